"""The differential test (tests/write/test_differential.py) on the facility forms of issue 14: where
TiledWriter fails and ours passes, and that bluesky-tiled-plugins' readers see the same data.

Each file of fixtures/facility that TiledWriter is fed as it is (relative external paths made absolute,
as in the main differential test) is written by both into embedded catalogs of their own. The table
below says what TiledWriter does with it; ours must ingest it, pass the validator, and read back
through the BlueskyRun client with the values of the documents and files, and, where TiledWriter
writes the run too, with TiledWriter's values.
"""

from __future__ import annotations

import shutil

import numpy
import pytest
from bluesky_tiled_plugins.writing.validator import validate
from tiled.client import from_context

from ingester.config import PathRules
from ingester.ingest.pipeline import RunIngester
from ingester.target.targets import open_embedded
from support.facility import FACILITY, event_values, facility_uid, file_data
from support.tree_compare import absolutize, load_documents

# file -> (what TiledWriter does with it, what its error says; None: it writes the run). Issue 14, classes 2, 4, 5.
TILEDWRITER = {
    "column_collisions.jsonl": (
        "fails: Tiled's SQL storage refuses the internal table, the run is left half-written (no stop)",
        "Column names must be unique when converted to lower case",
    ),
    "stream_resource_zeros.jsonl": (
        "fails: its consolidator refuses chunk_shape [0, 0, 0], the run is left without stop",
        "Chunk size in all dimensions must be at least 1",
    ),
    "stream_key_with_datums.jsonl": ("writes it", None),
}


def tiledwriter_writes(root, name: str) -> Exception | None:
    """Feed TiledWriter the file's documents; the exception it raised, if any."""
    from bluesky_tiled_plugins.writing.tiled_writer import TiledWriter

    writer = TiledWriter(root)
    try:
        for doc_name, doc in absolutize(load_documents(FACILITY / name), FACILITY):
            writer(doc_name, doc)
    except Exception as err:  # noqa: BLE001 - what TiledWriter does is the finding
        return err
    return None


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("facility-differential")
    with open_embedded(folder / "ours", [FACILITY]) as ours, open_embedded(folder / "theirs", [FACILITY]) as theirs:
        outcomes, failures = {}, {}
        for name in TILEDWRITER:
            outcomes[name] = RunIngester(ours.writer_root, PathRules()).ingest(FACILITY / name).runs
            failures[name] = tiledwriter_writes(theirs.root, name)
        yield ours, theirs, outcomes, failures
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("name", sorted(TILEDWRITER))
def test_tiledwriter_fails_where_listed_and_ours_passes(catalogs, name):
    ours, theirs, outcomes, failures = catalogs
    uid = facility_uid(name)
    assert [o.status for o in outcomes[name]] == ["ingested"], outcomes[name]
    run = ours.root[uid]
    assert validate(run, fix_errors=False, try_reading=True, raise_on_error=True, write_notes=False)
    what, error = TILEDWRITER[name]
    if error is not None:
        assert failures[name] is not None, f"TiledWriter wrote {name}: '{what}' no longer holds"
        assert error in str(failures[name]), failures[name]
        left = theirs.root[uid].metadata if uid in theirs.root else {}
        assert "stop" not in left  # nothing complete on TiledWriter's side
    else:
        assert failures[name] is None, failures[name]
        assert "stop" in theirs.root[uid].metadata


def test_collisions_read_back_with_every_value(catalogs):
    ours, *_ = catalogs
    name = "column_collisions.jsonl"
    stream = from_context(ours.context)[facility_uid(name)]["primary"]
    for key in ("det", "Time", "Seq_Num", "I0", "i0", "TS_det", "mon", "ts_mon"):
        numpy.testing.assert_array_equal(stream[key].read(), event_values(name, "primary", key), err_msg=key)


def test_zeros_read_back_as_the_file_holds(catalogs):
    ours, *_ = catalogs
    node = from_context(ours.context)[facility_uid("stream_resource_zeros.jsonl")]["primary"]["saxs"]
    numpy.testing.assert_array_equal(node.read(), file_data("zeros.h5"))


def test_stream_key_with_datums_reads_the_same_through_both(catalogs):
    """Where TiledWriter writes the run too, bluesky-tiled-plugins' client reads the same values from both."""
    ours, theirs, *_ = catalogs
    uid = facility_uid("stream_key_with_datums.jsonl")
    our_run, their_run = from_context(ours.context)[uid], from_context(theirs.context)[uid]
    for key, file in (("cam", "stream-key.h5"), ("roi", "filestore-key.h5")):
        our, their = our_run["primary"][key].read(), their_run["primary"][key].read()
        numpy.testing.assert_array_equal(our, file_data(file).reshape(our.shape), err_msg=key)
        numpy.testing.assert_array_equal(their.reshape(our.shape), our, err_msg=key)
    our_data, their_data = our_run["primary"].read(), their_run["primary"].read()
    numpy.testing.assert_array_equal(our_data["I0"].values, their_data["I0"].values)
