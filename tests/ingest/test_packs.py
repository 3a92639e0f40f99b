"""`ingest-dir PACK`: databroker-pack folders written by databroker-pack itself, moved, remapped, damaged.

The packs in fixtures/packs/ hold three runs (scan_baseline, an NPY_SEQ run and an AD_HDF5 run
under the foreign root /nsls2/data/tst/proposals/2024); each test copies a pack somewhere else
first, as a pack carried to another machine is. What lands in Tiled is compared with the same runs
ingested straight from their JSON Lines files, and read back through bluesky-tiled-plugins.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from bluesky_tiled_plugins.writing.validator import validate

from ingester.cli.app import app
from ingester.target.targets import open_embedded
from support.cli import catalog_uids, ingest, runner
from support.corpus import EXPECTED, FIXTURES
from support.tree_compare import assert_arrays_equal, assert_tables_equal, snapshot_run

PACKS = FIXTURES / "packs"
FOREIGN_ROOT = "/nsls2/data/tst/proposals/2024"
WRITER_ROOT = "/tmp/dbpack-stage/proposals-2024"  # the no-copy pack's root map: the writing machine's folder
HASHED = "f68eb1f7832e0d5082f63036801333f1"
SOURCES = ["good/scan_baseline.jsonl", "moved/npy_seq_moved.jsonl", "moved/legacy_ad_moved.jsonl"]
UIDS = {EXPECTED[name]["uid"] for name in SOURCES}
NPY_RUN = EXPECTED["moved/npy_seq_moved.jsonl"]["uid"]


def moved_pack(name: str, tmp_path: Path) -> Path:
    """The pack copied into another folder (its catalog.yml still names the folder it was written in)."""
    pack = tmp_path / "elsewhere" / f"carried-{name}"
    shutil.copytree(PACKS / name, pack)
    return pack


@pytest.fixture(scope="module")
def direct(tmp_path_factory):
    """The same three runs ingested from their JSON Lines files: what a pack must give."""
    folder = tmp_path_factory.mktemp("direct")
    moved = folder / "moved"
    shutil.copytree(FIXTURES / "moved", moved)
    files = [FIXTURES / SOURCES[0], moved / "npy_seq_moved.jsonl", moved / "legacy_ad_moved.jsonl"]
    result = ingest(*files, "--catalog", folder / "catalog", "--root-map", f"{FOREIGN_ROOT}={moved}")
    assert result.exit_code == 0, result.output
    with open_embedded(folder / "catalog", [moved, FIXTURES / "good"]) as target:
        yield target, folder / "catalog"


def assert_same_runs(catalog: Path, readable: list[Path], direct) -> None:
    """Every run of the pack is in `catalog` as the direct ingest has it, and passes the validator."""
    theirs, theirs_dir = direct
    with open_embedded(catalog, readable) as target:
        assert set(target.root) == UIDS
        for uid in UIDS:
            run = target.root[uid]
            assert validate(run, fix_errors=False, try_reading=True, raise_on_error=True, write_notes=False)
            ours, expected = snapshot_run(run, catalog), snapshot_run(theirs.root[uid], theirs_dir)
            assert ours.specs == expected.specs
            assert {k: v for k, v in ours.metadata.items() if k != "_ingest"} == {
                k: v for k, v in expected.metadata.items() if k != "_ingest"
            }
            assert ours.streams.keys() == expected.streams.keys()
            for stream, (specs, metadata, nodes) in ours.streams.items():
                assert (specs, metadata) == expected.streams[stream][:2], f"{uid}/{stream}"
                assert nodes.keys() == expected.streams[stream][2].keys()
                for key, node in nodes.items():
                    other, where = expected.streams[stream][2][key], f"{uid}/{stream}/{key}"
                    assert (node.family, node.shape, node.dtype, node.mimetype) == (
                        other.family, other.shape, other.dtype, other.mimetype,
                    ), where  # fmt: skip
                    if node.management == "external":  # a table's parameters name its storage
                        assert node.parameters == other.parameters, where
                    if node.family == "table":
                        assert_tables_equal(node.data, other.data, where)
                    else:
                        assert_arrays_equal(node.data, other.data, where)


@pytest.mark.parametrize("name", ["jsonl-copy", "msgpack-copy"])
def test_a_moved_pack_with_copies_ingests_as_its_source_files_do(name, tmp_path, direct):
    pack = moved_pack(name, tmp_path)
    catalog = tmp_path / "catalog"
    result = ingest(pack, "--catalog", catalog, "--report", tmp_path / "report.json")
    assert result.exit_code == 0, result.output
    entries = json.loads((tmp_path / "report.json").read_text())["files"]
    assert sorted(Path(e["path"]).parent for e in entries) == [pack / "documents"] * 3
    assert {e["status"] for e in entries} == {"ingested"}
    assert_same_runs(catalog, [pack], direct)
    with open_embedded(catalog, [pack]) as target:
        frames = target.root[NPY_RUN]["primary"]["img"].data_sources()[0].assets
        assert all(a.data_uri.startswith(f"file://localhost{pack}/external_files/{HASHED}/") for a in frames)
    assert ingest(pack, "--catalog", catalog).exit_code == 0  # again: nothing new


def test_a_pack_without_copies_reads_through_its_root_map_then_the_users(tmp_path, direct):
    pack = moved_pack("msgpack-nocopy", tmp_path)
    data = tmp_path / "usb" / "proposals-2024"
    shutil.copytree(FIXTURES / "moved", data)
    catalog = tmp_path / "catalog"
    result = ingest(pack, "--catalog", catalog)
    assert result.exit_code == 1  # the writing machine's folder is not here
    assert f"external file does not exist: {WRITER_ROOT}/data/" in result.output
    assert catalog_uids(catalog) == {EXPECTED[SOURCES[0]]["uid"]}
    retry = ["retry", "--catalog", str(catalog), "--root-map", f"{WRITER_ROOT}={data}"]
    result = runner.invoke(app, retry, catch_exceptions=False)  # as a refusal for a missing file is fixed
    assert result.exit_code == 0, result.output
    assert_same_runs(catalog, [pack, data], direct)


def test_a_pack_whose_catalog_came_last_is_read_again_once_it_is_there(tmp_path, direct):
    """A pack copied file by file, catalog.yml last: its runs with external files are refused without
    the root map; once catalog.yml is there, those files are read again (the others stay unchanged)."""
    pack = moved_pack("msgpack-copy", tmp_path)
    catalog_text = (pack / "catalog.yml").read_text()
    (pack / "catalog.yml").unlink()
    catalog = tmp_path / "catalog"
    result = ingest(pack, "--catalog", catalog)
    assert (
        result.exit_code == 1 and f"external file does not exist: {pack}/documents/{HASHED}/data/" in result.output
    ), result.output
    assert catalog_uids(catalog) == {EXPECTED[SOURCES[0]]["uid"]}
    failed = runner.invoke(app, ["status", "--catalog", str(catalog), "--failed"], catch_exceptions=False).output
    refusals = [line for line in failed.splitlines() if ": refused: " in line]
    assert len(refusals) == 2 and all(
        ".msgpack:document 3: refused: external file does not exist: " in r for r in refusals
    ), failed
    assert ingest(pack, "--catalog", catalog).output.count("unchanged") >= 1  # nothing changed: not read again
    assert catalog_uids(catalog) == {EXPECTED[SOURCES[0]]["uid"]}
    (pack / "catalog.yml").write_text(catalog_text)
    result = ingest(pack, "--catalog", catalog, "--report", tmp_path / "report.json")
    assert result.exit_code == 0, result.output
    statuses = sorted(e["status"] for e in json.loads((tmp_path / "report.json").read_text())["files"])
    assert statuses == ["ingested", "ingested", "unchanged"]
    assert_same_runs(catalog, [pack], direct)
    assert ingest(pack, "--catalog", catalog).exit_code == 0  # and then settled


def test_a_pack_keeping_absolute_roots_maps_them_relative_to_itself(tmp_path, direct):
    """Roots kept as the documents wrote them (no hashed id), mapped into the pack: how a pack
    without hashed roots (databroker-pack's --no-documents manifests, other exporters) says it."""
    pack = tmp_path / "elsewhere" / "absolute-roots"
    (pack / "documents").mkdir(parents=True)
    for name in SOURCES:
        shutil.copy(FIXTURES / name, pack / "documents" / Path(name).name)
    shutil.copytree(FIXTURES / "moved" / "data", pack / "external_files" / "site" / "data")
    (pack / "catalog.yml").write_text(
        "sources:\n  packed_catalog:\n    driver: bluesky-jsonl-catalog\n"
        f"    args:\n      paths: ['/old/machine/pack/documents/*.jsonl']\n"
        f"      root_map: {{'{FOREIGN_ROOT}': external_files/site}}\n"
        "    metadata:\n      relative_paths: ['./documents/*.jsonl']\n"
    )
    catalog = tmp_path / "catalog"
    result = ingest(pack, "--catalog", catalog)
    assert result.exit_code == 0, result.output
    assert_same_runs(catalog, [pack], direct)


def test_a_file_the_manifest_lists_but_the_pack_lacks_is_named(tmp_path):
    pack = moved_pack("jsonl-copy", tmp_path)
    lost = pack / "external_files" / HASHED / "data" / "f7c030_1.npy"
    lost.unlink()
    result = ingest(pack, "--catalog", tmp_path / "catalog")
    assert result.exit_code == 1
    assert f"{lost}: listed in external_files_manifest_{HASHED}.txt but not in the pack" in result.output
    assert f"external file does not exist: {lost}" in result.output
    assert NPY_RUN not in catalog_uids(tmp_path / "catalog")
    assert len(catalog_uids(tmp_path / "catalog")) == 2


def test_a_document_the_manifest_lists_but_the_pack_lacks_is_named(tmp_path):
    pack = moved_pack("msgpack-copy", tmp_path)
    lost = pack / "documents" / f"{NPY_RUN}.msgpack"
    lost.unlink()
    result = ingest(pack, "--catalog", tmp_path / "catalog")
    assert result.exit_code == 1
    assert f"{lost}: listed in documents_manifest.txt but not in the pack" in result.output
    assert len(catalog_uids(tmp_path / "catalog")) == 2


def write_sha256sums(pack: Path) -> None:
    """`sha256sum`'s output for every file of the pack but itself, paths relative to the pack."""
    lines = [
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(pack)}"
        for path in sorted(pack.rglob("*"))
        if path.is_file()
    ]
    (pack / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def test_sha256sums_are_verified_before_a_run_is_written(tmp_path):
    pack = moved_pack("msgpack-copy", tmp_path)
    write_sha256sums(pack)
    damaged = pack / "external_files" / HASHED / "data" / "legacy-ad-frames.h5"
    content = bytearray(damaged.read_bytes())
    content[-1] ^= 0xFF  # one bit of the data, not of the HDF5 structure: the file still reads
    damaged.write_bytes(bytes(content))
    catalog = tmp_path / "catalog"
    result = ingest(pack, "--catalog", catalog, "--report", tmp_path / "report.json")
    assert result.exit_code == 1
    assert "external file does not match its SHA256SUMS entry" in result.output
    assert str(damaged) in result.output
    damaged_run = EXPECTED["moved/legacy_ad_moved.jsonl"]["uid"]
    assert catalog_uids(catalog) == UIDS - {damaged_run}  # nothing of it in Tiled; the others are
    (entry,) = [e for e in json.loads((tmp_path / "report.json").read_text())["files"] if e["status"] != "ingested"]
    assert entry["status"] == "refused" and entry["runs"] == [damaged_run]


def test_sha256sums_that_match_let_every_run_in(tmp_path):
    pack = moved_pack("jsonl-copy", tmp_path)
    write_sha256sums(pack)
    result = ingest(pack, "--catalog", tmp_path / "catalog")
    assert result.exit_code == 0, result.output
    assert catalog_uids(tmp_path / "catalog") == UIDS


def test_a_document_that_does_not_match_sha256sums_is_refused_whole(tmp_path):
    pack = moved_pack("jsonl-copy", tmp_path)
    write_sha256sums(pack)
    document = pack / "documents" / f"{NPY_RUN}.jsonl"
    document.write_text(document.read_text().replace('"plan_name": "count"', '"plan_name": "count2"'))
    result = ingest(pack, "--catalog", tmp_path / "catalog")
    assert result.exit_code == 1
    assert f"{document}:0: - - : run file does not match its SHA256SUMS entry" in result.output
    assert catalog_uids(tmp_path / "catalog") == UIDS - {NPY_RUN}


def test_a_pack_pointing_at_files_outside_every_named_folder_stays_readable(tmp_path):
    """A pack without copies whose root map names a folder of this machine: the runs are written, and
    the catalog remembers that folder as readable (Tiled serves nothing outside its readable storage)."""
    pack = moved_pack("msgpack-nocopy", tmp_path)
    data = tmp_path / "beamline-disk"
    shutil.copytree(FIXTURES / "moved", data)
    catalog_yml = pack / "catalog.yml"
    catalog_yml.write_text(catalog_yml.read_text().replace(WRITER_ROOT, str(data)))
    catalog = tmp_path / "catalog"
    assert ingest(pack, "--catalog", catalog).exit_code == 0
    with open_embedded(catalog) as target:  # no readable folder given: those remembered at ingest
        images = target.root[NPY_RUN]["primary"]["img"].read()
    assert images.shape[0] == 3


@pytest.mark.parametrize("root", [FOREIGN_ROOT, HASHED], ids=["absolute-root", "hashed-id"])
def test_a_stream_resource_uri_is_mapped_by_the_packs_root_map(root, tmp_path):
    """A StreamResource (ophyd-async) keeps its file in `uri`: under the original root, or under the
    id written in its place (`file://localhost/<id>/...`)."""
    pack = tmp_path / "elsewhere" / "stream-resources"
    (pack / "documents").mkdir(parents=True)
    text = (FIXTURES / "moved" / "blob_count_moved.jsonl").read_text()
    (pack / "documents" / "blob.jsonl").write_text(text.replace(FOREIGN_ROOT, "/" + root.lstrip("/")))
    (pack / "external_files" / "site" / "data").mkdir(parents=True)
    shutil.copy(FIXTURES / "moved" / "data" / "blob-moved.h5", pack / "external_files" / "site" / "data")
    (pack / "catalog.yml").write_text(
        "sources:\n  packed_catalog:\n    driver: bluesky-jsonl-catalog\n"
        f"    args:\n      root_map: {{'{root}': external_files/site}}\n"
        "    metadata:\n      relative_paths: ['./documents/*.jsonl']\n"
    )
    catalog = tmp_path / "catalog"
    result = ingest(pack, "--catalog", catalog)
    assert result.exit_code == 0, result.output
    uid = EXPECTED["moved/blob_count_moved.jsonl"]["uid"]
    with open_embedded(catalog, [pack]) as target:
        assert validate(target.root[uid], fix_errors=False, try_reading=True, raise_on_error=True, write_notes=False)
