"""The differential test (issue 3): our runs against TiledWriter's, node by node, and the paths end to end.

Every run of every file in fixtures/good is written twice, into two embedded catalogs of the same
kind: by our pipeline, and by bluesky-tiled-plugins' TiledWriter fed the same documents (read by an
independent loader, relative external paths made absolute so that TiledWriter reads the same files
regardless of the working directory). The trees must agree in keys, specs, metadata, structures and
data, except for the `_ingest` provenance key we add and for the cases listed in KNOWN_DIFFERENCES,
where TiledWriter's own validator rejects TiledWriter's output. Then our runs are read through
bluesky-tiled-plugins' BlueskyRun client, and the path options are driven through the CLI.
The facility forms of issue 14 (fixtures/facility), several of which TiledWriter fails on, are
compared in tests/write/test_differential_facility.py.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy
import pytest
from bluesky_tiled_plugins.writing.validator import StructureValidationException, validate
from typer.testing import CliRunner

import ingester.logs  # noqa: F401 - loguru binds its default sink to sys.stderr when first imported:
from ingester.config import PathRules

# here, not inside a CliRunner invocation whose captured stderr is closed when it returns
from ingester.ingest.pipeline import RunIngester
from ingester.target.targets import open_embedded
from support.corpus import EXPECTED, FIXTURES
from support.tree_compare import (
    absolutize,
    assert_arrays_equal,
    assert_tables_equal,
    event_columns,
    file_array,
    load_documents,
    snapshot_run,
    validator_faults,
    with_config_update,
)

GOOD, MOVED, UNSAFE = FIXTURES / "good", FIXTURES / "moved", FIXTURES / "unsafe"
MOVED_FROM = "/nsls2/data/tst/proposals/2024"

_SIM_BLOB = (
    "ophyd-async SimBlobDetector declares `bdet` with shape [1, 240, 320] per event while "
    "/entry/data/data holds (N, 240, 320); TiledWriter prepends the event axis to the declared shape "
    "and registers (N, 1, 240, 320), which its own validator rejects as a shape mismatch"
)
# (file under fixtures/, stream, key) -> why TiledWriter's node is wrong there. Only TiledWriter's
# faults belong here: each entry must fail bluesky-tiled-plugins' validator on TiledWriter's side.
KNOWN_DIFFERENCES = {
    ("good/blob_count.jsonl", "primary", "bdet"): _SIM_BLOB,
    ("good/blob_count.name_doc.jsonl", "primary", "bdet"): _SIM_BLOB,
    ("good/blob_fly.jsonl", "primary", "bdet"): _SIM_BLOB,
}


# A run derived in the test (no fixture has one): a second descriptor of `primary` -> _config_updates.
CONFIG_UPDATE = "derived/config_update.jsonl"
CONFIG_UPDATE_UID = "c0f19000-0000-4000-8000-00000000da7a"


def _good_runs() -> list:
    runs = []
    for name, entry in sorted(EXPECTED.items()):
        if name.startswith("good/"):
            for n, details in enumerate(entry.get("run_details") or [entry]):
                runs.append(pytest.param(name, details, id=f"{name}#{n}"))
    details = {"uid": CONFIG_UPDATE_UID, "streams": {"primary": 3}, "external_keys": {}}
    return [*runs, pytest.param(CONFIG_UPDATE, details, id=CONFIG_UPDATE)]


GOOD_RUNS = _good_runs()
runner = CliRunner()
PATHS = {name: FIXTURES / name for name in EXPECTED}  # the derived file is added by `catalogs`


@functools.cache
def documents(name: str) -> list[tuple[str, dict]]:
    return load_documents(PATHS[name])


def registered_shape(info: dict) -> tuple:
    """The shape the file's data is registered with: the file's own, except that a legacy AD HDF5
    resource gets TiledWriter's frame_per_point axis (1 here), which the validator expects too."""
    shape = tuple(info["file_shape"])
    if info.get("spec") == "AD_HDF5_SWMR_STREAM":
        return (shape[0], 1, *shape[1:])
    return shape


def assert_node_holds_file(node, info: dict, folder: Path, moved_from: str | None = None) -> None:
    expected = file_array(info, folder, moved_from)
    assert tuple(node.shape) == registered_shape(info)
    assert_arrays_equal(node.read(), expected.reshape(node.shape), f"{info['stream']}/{node.item['id']}")


# -- the two catalogs -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def empty_catalog(tmp_path_factory) -> Path:
    """An initialised, empty embedded catalog folder; copies of it skip Tiled's slow `catalog init`."""
    folder = tmp_path_factory.mktemp("template") / "catalog"
    open_embedded(folder).close()
    return folder


def fresh_catalog(empty_catalog: Path, folder: Path) -> Path:
    return Path(shutil.copytree(empty_catalog, folder / "catalog"))


class Catalogs:
    """Our catalog and TiledWriter's, open, with each run described once on demand."""

    def __init__(self, ours, theirs, outcomes):
        self.ours, self.theirs, self.outcomes = ours, theirs, outcomes
        self._snapshots: dict[tuple[str, str], object] = {}
        self._faults: dict[str, dict] = {}

    def snapshot(self, side: str, uid: str):
        if (side, uid) not in self._snapshots:
            target = self.ours if side == "ours" else self.theirs
            self._snapshots[side, uid] = snapshot_run(target.root[uid], Path(target.description))
        return self._snapshots[side, uid]

    def their_faults(self, uid: str) -> dict:
        if uid not in self._faults:
            self._faults[uid] = validator_faults(self.theirs.root[uid])
        return self._faults[uid]


@pytest.fixture(scope="module")
def catalogs(empty_catalog, tmp_path_factory):
    folder = tmp_path_factory.mktemp("differential")
    derived = PATHS[CONFIG_UPDATE] = folder / Path(CONFIG_UPDATE).name
    docs = with_config_update(documents("good/two_runs.jsonl"), CONFIG_UPDATE_UID)
    derived.write_text("".join(json.dumps([n, d]) + "\n" for n, d in docs))
    with (
        open_embedded(fresh_catalog(empty_catalog, folder / "ours"), [GOOD]) as ours,
        open_embedded(fresh_catalog(empty_catalog, folder / "theirs"), [GOOD]) as theirs,
    ):
        from bluesky_tiled_plugins.writing.tiled_writer import TiledWriter

        outcomes = {}
        for name in sorted({p.values[0] for p in GOOD_RUNS}):
            outcomes[name] = RunIngester(ours.writer_root, PathRules()).ingest(PATHS[name]).runs  # as ingest-dir writes
            writer = TiledWriter(theirs.root)
            for doc_name, doc in absolutize(documents(name), PATHS[name].parent):
                writer(doc_name, doc)
        yield Catalogs(ours, theirs, outcomes)


# -- our tree against TiledWriter's ------------------------------------------------------------


def test_every_good_run_is_written_by_both(catalogs):
    for name, outcomes in catalogs.outcomes.items():
        runs = EXPECTED[name]["runs"] if name in EXPECTED else 1
        assert [o.status for o in outcomes] == ["ingested"] * runs, (name, outcomes)
    uids = {p.values[1]["uid"] for p in GOOD_RUNS}
    assert set(catalogs.ours.root) == uids
    assert set(catalogs.theirs.root) == uids


@pytest.mark.parametrize(("name", "details"), GOOD_RUNS)
def test_tree_matches_tiledwriter(catalogs, name, details):
    ours, theirs = catalogs.snapshot("ours", details["uid"]), catalogs.snapshot("theirs", details["uid"])
    known = {(stream, key) for (file, stream, key) in KNOWN_DIFFERENCES if file == name}
    assert ours.specs == theirs.specs == [("BlueskyRun", "3.0")]
    assert list(ours.streams) == list(theirs.streams)
    assert set(ours.streams) == set(details["streams"])
    for stream, (our_specs, our_md, our_nodes) in ours.streams.items():
        their_specs, their_md, their_nodes = theirs.streams[stream]
        assert our_specs == their_specs == [("BlueskyEventStream", "3.0"), ("composite", None)]
        assert {"data_keys", "configuration"} <= set(our_md)
        assert our_md == their_md, stream  # descriptor metadata, _config_updates included
        assert ("_config_updates" in our_md) == (name == CONFIG_UPDATE and stream == "primary")
        assert list(our_nodes) == list(their_nodes), stream
        for key, our in our_nodes.items():
            their, where = their_nodes[key], f"{name} {stream}/{key}"
            for attr in ("family", "specs", "metadata", "management", "mimetype", "parameters", "assets"):
                assert getattr(our, attr) == getattr(their, attr), f"{where}: {attr}"
            assert our.columns == their.columns and our.dtype == their.dtype, where
            if our.family == "table":
                assert_tables_equal(our.data, their.data, where)
            elif (stream, key) in known:  # same values; only TiledWriter's extra axis differs
                assert our.shape != their.shape, f"{where} is listed as a known difference but agrees"
                assert_arrays_equal(our.data, their.data.reshape(our.shape), where)
            else:
                assert (our.shape, our.chunks, our.dims) == (their.shape, their.chunks, their.dims), where
                assert_arrays_equal(our.data, their.data, where)


@pytest.mark.parametrize(("name", "details"), GOOD_RUNS)
def test_run_metadata_differs_only_by_provenance(catalogs, name, details):
    ours, theirs = catalogs.snapshot("ours", details["uid"]), catalogs.snapshot("theirs", details["uid"])
    assert set(ours.metadata) - set(theirs.metadata) == {"_ingest"}
    assert {k: v for k, v in ours.metadata.items() if k != "_ingest"} == theirs.metadata
    assert {"start", "stop"} <= set(theirs.metadata)  # and `notes` when TiledWriter wrote any
    provenance = ours.metadata["_ingest"]
    path = PATHS[name]
    assert provenance["source"]["path"] == str(path)
    assert provenance["source"]["hash"] == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert provenance["state"] == "complete"


@pytest.mark.parametrize(("name", "details"), GOOD_RUNS)
def test_tiledwriter_fails_the_validator_exactly_where_listed(catalogs, name, details):
    faults = catalogs.their_faults(details["uid"])
    assert set(faults) == {(stream, key) for (file, stream, key) in KNOWN_DIFFERENCES if file == name}, faults


@pytest.mark.parametrize(("name", "stream", "key"), sorted(KNOWN_DIFFERENCES))
def test_known_difference_is_tiledwriters_fault(catalogs, name, stream, key):
    info = EXPECTED[name]["external_keys"][key]
    uid = EXPECTED[name]["uid"]
    their_run, our_run = catalogs.theirs.root[uid], catalogs.ours.root[uid]
    their_node = their_run[stream].base[key]
    assert tuple(their_node.shape) == (info["file_shape"][0], *info["declared_shape"])
    assert "Shape mismatch" in catalogs.their_faults(uid)[(stream, key)]
    with pytest.raises(StructureValidationException):
        validate(their_run, fix_errors=False, try_reading=True, raise_on_error=True, write_notes=False)
    assert validate(our_run, fix_errors=False, try_reading=True, raise_on_error=True, write_notes=False)
    our_node = our_run[stream].base[key]
    assert tuple(our_node.shape) == tuple(info["file_shape"])
    assert_node_holds_file(our_node, info, GOOD)


# -- our runs, as bluesky-tiled-plugins reads them -------------------------------------------------


@pytest.mark.parametrize(("name", "details"), GOOD_RUNS)
def test_our_run_passes_the_validator(catalogs, name, details):
    run = catalogs.ours.root[details["uid"]]
    notes_before = run.metadata.get("notes")
    # raise_on_error: a structure mismatch, which validate() would only log and note, fails here
    assert validate(run, fix_errors=False, try_reading=True, raise_on_error=True)
    run.refresh()
    assert run.metadata.get("notes") == notes_before  # the validator found nothing to note


@pytest.mark.parametrize(("name", "details"), GOOD_RUNS)
def test_our_run_reads_through_the_bluesky_run_client(catalogs, name, details):
    import xarray
    from bluesky_tiled_plugins.clients.bluesky_run import BlueskyRunV3
    from tiled.client import from_context

    run = from_context(catalogs.ours.context)[details["uid"]]
    assert isinstance(run, BlueskyRunV3)
    assert sorted(run) == sorted(details["streams"])
    for stream, rows in details["streams"].items():
        dataset = run[stream].read()
        assert isinstance(dataset, xarray.Dataset)
        assert dataset.sizes["time"] == rows
        descriptor = next(
            doc
            for doc_name, doc in documents(name)
            if doc_name == "descriptor" and (doc["name"], doc["run_start"]) == (stream, details["uid"])
        )
        renamed = {f"{k}_" if k in ("time", "seq_num") else k: k for k in descriptor["data_keys"]}
        assert set(dataset.data_vars) == set(renamed)
        columns = event_columns(documents(name), details["uid"], stream)
        for variable, key in renamed.items():
            values, where = dataset[variable].values, f"{name} {stream}/{variable}"
            if key in details["external_keys"]:
                info = details["external_keys"][key]
                expected = file_array(info, GOOD)
                assert values.shape[0] == rows and math.prod(values.shape) == expected.size, where
                numpy.testing.assert_array_equal(values, expected.reshape(values.shape), err_msg=where)
            else:
                numpy.testing.assert_array_equal(values, numpy.asarray(columns[key]), err_msg=where)


# -- paths, end to end through the CLI ------------------------------------------------------------


def ingest_dir(*args: str):
    from ingester.cli.app import app  # here, so that the differential part runs even if the CLI does not import

    return runner.invoke(app, ["ingest-dir", *args], catch_exceptions=False)


def first_external_document(path: Path) -> tuple[int, str, str]:
    """(line, name, uid) of the first resource or stream_resource of a one-document-a-line file."""
    for line, (name, doc) in enumerate(load_documents(path), start=1):
        if name in ("resource", "stream_resource"):
            return line, name, doc["uid"]
    raise AssertionError(f"{path} references no external file")


def asset_uris(node) -> list[str]:
    return [asset.data_uri for asset in node.data_sources()[0].assets]


def catalog_uids(catalog: Path, readable_roots=()) -> set[str]:
    with open_embedded(catalog, readable_roots) as target:
        return set(target.root)


def test_moved_data_needs_the_root_map(empty_catalog, tmp_path):
    catalog = fresh_catalog(empty_catalog, tmp_path)
    files = sorted(MOVED.glob("*.jsonl"))
    refused = ingest_dir(str(MOVED), "--catalog", str(catalog))
    assert refused.exit_code == 1, refused.output
    for path in files:
        line, doc_name, uid = first_external_document(path)
        message = next((m for m in refused.output.splitlines() if m.startswith(f"{path}:{line}: ")), None)
        assert message is not None, refused.output
        assert f"{doc_name} {uid} :" in message and MOVED_FROM in message, message
    assert catalog_uids(catalog) == set()

    # The files did not change, so a plain second ingest-dir skips them; `retry` is for a fixed cause.
    skipped = ingest_dir(str(MOVED), "--catalog", str(catalog), "--root-map", f"{MOVED_FROM}={MOVED}")
    assert catalog_uids(catalog) == set(), skipped.output
    from ingester.cli.app import app as cli_app

    mapped = runner.invoke(cli_app, ["retry", "--catalog", str(catalog), "--root-map", f"{MOVED_FROM}={MOVED}"])
    assert mapped.exit_code == 0, mapped.output
    with open_embedded(catalog, [MOVED]) as target:
        for path in files:
            expected = EXPECTED[f"moved/{path.name}"]
            run = target.root[expected["uid"]]
            assert validate(run, fix_errors=False, try_reading=True, raise_on_error=True)
            for key, info in expected["external_keys"].items():
                node = run[info["stream"]].base[key]
                assert all(uri.startswith(f"file://localhost{MOVED}/data/") for uri in asset_uris(node))
                assert_node_holds_file(node, info, MOVED, moved_from=MOVED_FROM)


UNSAFE_CASES = {  # file -> (what the message says, the path it names)
    "climbs_out.jsonl": ("escapes the data roots", FIXTURES.parent / "outside.h5"),
    "climbs_out_legacy.jsonl": ("escapes the data roots", FIXTURES.parent / "outside.h5"),
    "symlink_outside.jsonl": ("symlink", UNSAFE / "data" / "hostname-link.h5"),
    "missing_file.jsonl": ("does not exist", UNSAFE / "data" / "missing-blob.h5"),
}


@pytest.mark.parametrize("file", sorted(UNSAFE_CASES))
def test_unsafe_run_is_refused_and_leaves_nothing(empty_catalog, tmp_path, file):
    phrase, named_path = UNSAFE_CASES[file]
    path = UNSAFE / file
    catalog = fresh_catalog(empty_catalog, tmp_path)
    result = ingest_dir(str(path), "--catalog", str(catalog))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    line, doc_name, uid = first_external_document(path)
    message = next((m for m in result.output.splitlines() if m.startswith(f"{path}:{line}: ")), None)
    assert message is not None, result.output
    assert f"{doc_name} {uid} :" in message and phrase in message and str(named_path) in message, message
    left = catalog_uids(catalog)
    assert EXPECTED[f"unsafe/{file}"]["uid"] not in left
    assert left == set()  # nor anything else


DATA_FILES = ["good/blob_count.jsonl", "good/count_npy_seq.jsonl", "good/legacy_ad_hdf5_frames.jsonl"]


def test_data_roots_are_tried_in_order(empty_catalog, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "data").mkdir(parents=True)  # the folder is there, the files are not
    shutil.copytree(GOOD / "data", second / "data")
    catalog = fresh_catalog(empty_catalog, tmp_path)
    paths = [str(FIXTURES / name) for name in DATA_FILES]
    result = ingest_dir(*paths, "--catalog", str(catalog), "--data-root", str(first), "--data-root", str(second))
    assert result.exit_code == 0, result.output
    with open_embedded(catalog, [second]) as target:
        for name in DATA_FILES:
            run = target.root[EXPECTED[name]["uid"]]
            assert validate(run, fix_errors=False, try_reading=True, raise_on_error=True)
            for key, info in EXPECTED[name]["external_keys"].items():
                node = run[info["stream"]].base[key]
                assert all(uri.startswith(f"file://localhost{second}/data/") for uri in asset_uris(node))
                assert_node_holds_file(node, info, second)


def test_server_path_prefix_is_registered(empty_catalog, tmp_path):
    local, server = tmp_path / "local", tmp_path / "server"
    shutil.copytree(GOOD / "data", local / "data")
    server.symlink_to(local, target_is_directory=True)  # the same files, as the server mounts them
    catalog = fresh_catalog(empty_catalog, tmp_path)
    names = DATA_FILES[:2]
    result = ingest_dir(
        *(str(FIXTURES / n) for n in names),
        "--catalog",
        str(catalog),
        "--data-root",
        str(local),
        "--server-path",
        f"{local}={server}",
    )
    assert result.exit_code == 0, result.output
    with open_embedded(catalog, [server]) as target:
        for name in names:
            run = target.root[EXPECTED[name]["uid"]]
            for key, info in EXPECTED[name]["external_keys"].items():
                node = run[info["stream"]].base[key]
                uris = asset_uris(node)
                assert uris and all(u.startswith(f"file://localhost{server}/data/") for u in uris), uris
                assert_node_holds_file(node, info, server)
