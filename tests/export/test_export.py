"""`ingester export DEST` (issue 15, part 3): which runs, the pack's files, resuming, exit codes.

Catalog A (tests/export/conftest.py) holds the good and facility fixtures; each test exports into a
folder of its own and looks at what a user would: the exit code, the summary, the files of the pack.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import msgpack
import msgpack_numpy
import yaml

from ingester.cli.app import app
from ingester.target.targets import open_embedded
from support.cli import catalog_uids, ingest, runner
from support.corpus import EXPECTED, FIXTURES

SCAN = EXPECTED["good/scan_baseline.jsonl"]["uid"]  # no external data
BLOB = EXPECTED["good/blob_count.jsonl"]["uid"]  # one HDF5 file, two external keys
NPY = EXPECTED["good/count_npy_seq.jsonl"]["uid"]  # three NPY files


def export(*args):
    return runner.invoke(app, ["export", *map(str, args)], catch_exceptions=False)


def documents_of(path: Path) -> list[tuple[str, dict]]:
    import json

    if path.suffix == ".msgpack":
        with open(path, "rb") as fh:
            return [tuple(item) for item in msgpack.Unpacker(fh, object_hook=msgpack_numpy.decode, raw=False)]
    return [tuple(json.loads(line)) for line in path.read_text().splitlines()]


def catalog_yml(pack: Path) -> dict:
    (source,) = yaml.safe_load((pack / "catalog.yml").read_text())["sources"].values()
    return source


def test_export_selected_runs_as_jsonl(catalog_a, tmp_path):
    result = export(tmp_path / "pack", "--catalog", catalog_a, "--uid", SCAN, "--uid", BLOB)
    assert result.exit_code == 0, result.output
    assert "exported" in result.output and "2 runs in" in result.output
    pack = tmp_path / "pack"
    assert sorted(p.name for p in (pack / "documents").iterdir()) == sorted([f"{SCAN}.jsonl", f"{BLOB}.jsonl"])
    docs = documents_of(pack / "documents" / f"{BLOB}.jsonl")
    names = [name for name, _ in docs]
    assert names[0] == "start" and names[-1] == "stop"
    assert {"descriptor", "event_page", "stream_resource", "stream_datum"} <= set(names)
    assert "_ingest" not in docs[0][1]
    source = catalog_yml(pack)
    assert source["driver"] == "bluesky-jsonl-catalog"
    assert source["metadata"]["relative_paths"] == ["./documents/*.jsonl"]
    (root, copy), *_ = source["args"]["root_map"].items()
    assert root == str(catalog_a.parent / "source" / "good" / "data")
    ident = copy.removeprefix("external_files/")
    assert (pack / copy / "blob-count.h5").read_bytes() == (Path(root) / "blob-count.h5").read_bytes()
    manifest = (pack / f"external_files_manifest_{ident}.txt").read_text().split()
    assert manifest == [f"external_files/{ident}/blob-count.h5"]
    assert (pack / "documents_manifest.txt").read_text().split() == sorted(
        [f"documents/{SCAN}.jsonl", f"documents/{BLOB}.jsonl"]
    )


def test_sha256sums_checks_with_sha256sum(catalog_a, tmp_path):
    pack = tmp_path / "pack"
    assert export(pack, "--catalog", catalog_a, "--uid", BLOB, "--uid", NPY).exit_code == 0
    lines = (pack / "SHA256SUMS").read_text().splitlines()
    assert len(lines) == 2 + 1 + 3  # two documents files, one HDF5 file, three NPY files
    for line in lines:
        digest, name = line.split("  ")
        assert hashlib.sha256((pack / name).read_bytes()).hexdigest() == digest
    if shutil.which("sha256sum"):
        assert subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=pack).returncode == 0


def test_msgpack_format(catalog_a, tmp_path):
    pack = tmp_path / "pack"
    result = export(pack, "--catalog", catalog_a, "--uid", BLOB, "--format", "msgpack")
    assert result.exit_code == 0, result.output
    assert catalog_yml(pack)["driver"] == "bluesky-msgpack-catalog"
    assert catalog_yml(pack)["metadata"]["relative_paths"] == ["./documents/*.msgpack"]
    msgpacked = documents_of(pack / "documents" / f"{BLOB}.msgpack")
    assert export(tmp_path / "json", "--catalog", catalog_a, "--uid", BLOB).exit_code == 0
    assert msgpacked == documents_of(tmp_path / "json" / "documents" / f"{BLOB}.jsonl")


def test_no_copy_external_lists_the_originals(catalog_a, tmp_path):
    pack = tmp_path / "pack"
    assert export(pack, "--catalog", catalog_a, "--uid", NPY, "--no-copy-external").exit_code == 0
    assert not (pack / "external_files").exists()
    root_map = catalog_yml(pack)["args"]["root_map"]
    data = str(catalog_a.parent / "source" / "good" / "data")
    assert root_map == {data: data}
    (manifest,) = pack.glob("external_files_manifest_*.txt")
    assert manifest.read_text().split() == [f"{data}/f7c030_{i}.npy" for i in range(3)]
    assert [line.split("  ")[1] for line in (pack / "SHA256SUMS").read_text().splitlines()] == [
        f"documents/{NPY}.jsonl"
    ]


def test_since_until_and_limit(catalog_a, tmp_path):
    with open_embedded(catalog_a) as target:
        times = {uid: target.root[uid].metadata["start"]["time"] for uid in target.root}
    ordered = sorted(times, key=times.get)
    middle = times[ordered[len(ordered) // 2]]
    since = datetime.fromtimestamp(middle).isoformat(timespec="seconds")
    until = datetime.fromtimestamp(times[ordered[-1]]).isoformat(timespec="seconds")
    result = export(tmp_path / "window", "--catalog", catalog_a, "--since", since, "--until", until)
    assert result.exit_code == 0, result.output
    start, stop = datetime.fromisoformat(since).timestamp(), datetime.fromisoformat(until).timestamp()
    expected = {uid for uid, t in times.items() if start <= t < stop}
    assert expected and {p.stem for p in (tmp_path / "window" / "documents").iterdir()} == expected
    assert export(tmp_path / "limit", "--catalog", catalog_a, "--limit", "3").exit_code == 0
    assert len(list((tmp_path / "limit" / "documents").iterdir())) == 3


def test_uid_file_and_unknown_uid(catalog_a, tmp_path):
    listed = tmp_path / "uids.txt"
    listed.write_text(f"# runs to carry\n{SCAN}\n\n{NPY}\n")
    assert export(tmp_path / "pack", "--catalog", catalog_a, "--uid-file", listed).exit_code == 0
    assert {p.stem for p in (tmp_path / "pack" / "documents").iterdir()} == {SCAN, NPY}
    result = export(tmp_path / "other", "--catalog", catalog_a, "--uid", "no-such-run")
    assert result.exit_code == 2
    assert "not in the catalog: no-such-run" in result.output


def test_a_long_uid_file_names_every_unknown_uid_and_only_those(catalog_a, tmp_path):
    """The uids are looked up a hundred at a time: every run of A and 150 unknown ones in one file."""
    with open_embedded(catalog_a) as target:
        known = list(target.root)
    unknown = [f"no-such-run-{n:03d}" for n in range(150)]
    listed = tmp_path / "uids.txt"
    listed.write_text("\n".join([*unknown[:75], *known, *unknown[75:]]) + "\n")
    result = export(tmp_path / "pack", "--catalog", catalog_a, "--uid-file", listed)
    assert result.exit_code == 2
    named = result.output.split("not in the catalog: ", 1)[1].replace("\n", "").replace(" ", "").split(",")
    assert named == unknown
    listed.write_text("\n".join(known) + "\n")
    result = export(tmp_path / "pack", "--catalog", catalog_a, "--uid-file", listed)
    assert result.exit_code == 0, result.output
    assert {p.stem for p in (tmp_path / "pack" / "documents").iterdir()} == set(known)


def test_no_catalog_is_exit_2(tmp_path):
    result = export(tmp_path / "pack", "--catalog", tmp_path / "nothing")
    assert result.exit_code == 2
    assert "no catalog in" in result.output


def test_rerun_skips_verified_runs_and_redoes_altered_ones(catalog_a, tmp_path):
    pack = tmp_path / "pack"
    assert export(pack, "--catalog", catalog_a, "--uid", BLOB, "--uid", SCAN).exit_code == 0
    first = {p: p.stat().st_mtime_ns for p in pack.rglob("*") if p.is_file() and p.name != "catalog.yml"}
    again = export(pack, "--catalog", catalog_a, "--uid", BLOB, "--uid", SCAN)
    assert again.exit_code == 0
    assert "already-exported" in again.output and " exported " not in again.output
    documents = [p for p in first if p.relative_to(pack).parts[0] in ("documents", "external_files")]
    assert all(p.stat().st_mtime_ns == first[p] for p in documents)  # nothing of them written again
    (copy,) = (pack / "external_files").rglob("blob-count.h5")
    copy.write_bytes(b"not what was exported")
    third = export(pack, "--catalog", catalog_a, "--uid", BLOB, "--uid", SCAN)
    assert third.exit_code == 0
    assert "exported" in third.output and "already-exported" in third.output
    original = catalog_a.parent / "source" / "good" / "data" / "blob-count.h5"
    assert copy.read_bytes() == original.read_bytes()


def test_an_interrupted_export_has_no_catalog_yml_until_finished(catalog_a, tmp_path):
    """The pack's catalog.yml is removed when an export begins and written when it ends: a stopped
    export leaves a folder without it, and running the command again completes it."""
    import threading

    from ingester.export.exporter import export_runs
    from ingester.export.pack import Pack

    pack = Pack(tmp_path / "pack")
    assert export(pack.root, "--catalog", catalog_a, "--uid", SCAN).exit_code == 0
    assert pack.catalog_file.is_file()
    stop = threading.Event()
    with open_embedded(catalog_a) as target:
        outcomes = []
        for outcome in export_runs(target.root, [BLOB, NPY], pack, stop=stop):
            outcomes.append(outcome.status)
            stop.set()  # as a SIGINT after the first run
    assert outcomes == ["exported", "interrupted"]
    assert not pack.catalog_file.exists()
    result = export(pack.root, "--catalog", catalog_a, "--uid", SCAN, "--uid", BLOB, "--uid", NPY)
    assert result.exit_code == 0
    assert pack.catalog_file.is_file()
    assert len((pack.root / "documents_manifest.txt").read_text().split()) == 3


def test_a_missing_external_file_refuses_the_run_by_name(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(FIXTURES / "good", source)
    catalog = tmp_path / "catalog"
    files = [source / name for name in ("blob_count.jsonl", "scan_baseline.jsonl")]
    assert ingest(*files, "--catalog", catalog, "--jobs", "1", "--processes", "0").exit_code == 0
    (source / "data" / "blob-count.h5").unlink()
    result = export(tmp_path / "pack", "--catalog", catalog)
    assert result.exit_code == 1
    assert f"{BLOB}: refused" in result.output and "blob-count.h5" in result.output
    assert (tmp_path / "pack" / "documents" / f"{SCAN}.jsonl").is_file()
    assert not (tmp_path / "pack" / "documents" / f"{BLOB}.jsonl").exists()
    assert (tmp_path / "pack" / "catalog.yml").is_file()  # every run was looked at


def test_a_run_ingested_without_its_missing_keys_exports_as_it_is_in_tiled(tmp_path):
    """A run ingested with `--on-missing-file skip` holds no node for the keys whose files were
    missing: its documents leave those keys out too (said on export), so the pack ingests as it is,
    into the same tree."""
    source = FIXTURES / "facility" / "missing_detector_file.jsonl"
    a, b = tmp_path / "a", tmp_path / "b"
    assert ingest(source, "--catalog", a, "--on-missing-file", "skip").exit_code == 0
    result = export(tmp_path / "pack", "--catalog", a)
    assert result.exit_code == 0, result.output
    assert (
        "without the data keys left out at its ingest (files missing): primary/pilatus, primary/eiger" in result.output
    )
    (uid,) = catalog_uids(a)
    documents = documents_of(tmp_path / "pack" / "documents" / f"{uid}.jsonl")
    descriptors = [doc for name, doc in documents if name == "descriptor"]
    assert [sorted(d["data_keys"]) for d in descriptors] == [["I0", "motor"]]
    result = ingest(tmp_path / "pack", "--catalog", b)
    assert result.exit_code == 0, result.output
    with open_embedded(a) as ta, open_embedded(b) as tb:
        ours, theirs = ta.root[uid], tb.root[uid]
        assert list(ours["primary"]) == list(theirs["primary"])
        assert ours["primary"].read().equals(theirs["primary"].read())
        assert sorted(theirs["primary"].metadata["data_keys"]) == ["I0", "motor"]
