"""ingester.write (the writer and its tables) with planned external nodes, against a real, embedded Tiled catalog."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy
import pytest
from bluesky_tiled_plugins.writing.validator import validate
from tiled.client import from_context

from ingester.problems import IngestError
from ingester.read.rows import blocks_from_rows
from ingester.target.targets import open_embedded
from ingester.write.writer import RunAlreadyPresent
from support.run_builder import PROVENANCE, H, RunBuilder, W, image_run, scalar_run, write_planned


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    folder = tmp_path_factory.mktemp("catalog")
    with open_embedded(folder / "cat", readable_roots=[Path("/tmp"), folder.parent]) as target:
        yield target


@pytest.fixture(params=["http", "embedded"])
def root(catalog, request):
    """Every writer test runs twice: through tiled's HTTP client (how a server is written) and
    through the embedded catalog's adapter (how ingest-dir writes its default catalog)."""
    return catalog.root if request.param == "http" else catalog.writer_root


@contextmanager
def count_requests(context):
    """Collect every HTTP request the client sends while inside the block."""
    seen: list = []
    hooks = context.http_client.event_hooks
    before = list(hooks.get("request", []))
    context.http_client.event_hooks = {**hooks, "request": [*before, seen.append]}
    try:
        yield seen
    finally:
        context.http_client.event_hooks = {**context.http_client.event_hooks, "request": before}


# --- tests ---------------------------------------------------------------------------------------


def test_scalar_run_tree_and_content(root, tmp_path):
    builder = scalar_run(tmp_path, tiled_specs=["Extra"], plan_name="count")
    builder.stream("primary", builder.streams["primary"].descriptor["data_keys"], {"det": {"data": {"det_gain": 3}}})
    run = builder.finish()
    write_planned(root, run, builder.batches(), provenance=PROVENANCE)

    node = root[run.uid]
    assert {name: len(node[name].base["internal"].read()) for name in node} == {"primary": 10, "baseline": 2}
    assert [s.name for s in node.specs] == ["Extra", "BlueskyRun"]
    assert node.specs[-1].version == "3.0"
    assert "tiled_specs" not in node.metadata["start"]
    assert node.metadata["start"]["plan_name"] == "count"
    assert node.metadata["stop"]["exit_status"] == "success"
    assert node.metadata["_ingest"] == {**PROVENANCE, "state": "complete"}
    assert set(node.keys()) == {"primary", "baseline"}

    stream = node["primary"]
    assert [s.name for s in stream.specs] == ["BlueskyEventStream", "composite"]
    md = stream.metadata
    assert {"name", "object_keys", "run_start"}.isdisjoint(md)
    assert md["uid"] == builder.streams["primary"].descriptor_uids[0]
    assert md["_config_updates"][0]["configuration"]["det"]["data"]["det_gain"] == 3
    assert list(stream.base.keys()) == ["internal"]

    table = stream.base["internal"].read()
    expected = builder.rows["primary"]
    assert list(table.columns) == list(expected[0])
    assert table.to_dict("records") == expected
    assert node["baseline"].base["internal"].read()["temp"].tolist() == [20.0, 21.0]
    assert validate(node, fix_errors=False, try_reading=True, raise_on_error=True)


def test_run_reads_through_bluesky_client(catalog, tmp_path):
    builder = scalar_run(tmp_path, n=4)
    run = builder.finish()
    write_planned(catalog.root, run, builder.batches(), provenance=PROVENANCE)
    client = from_context(catalog.context)  # bluesky-tiled-plugins' clients are picked by spec
    bluesky_run = client[run.uid]
    assert type(bluesky_run).__name__.startswith("BlueskyRun")
    dataset = bluesky_run["primary"].read()
    assert dataset["motor"].values.tolist() == [0.0, 0.5, 1.0, 1.5]
    assert bluesky_run.metadata["stop"]["uid"] == run.stop["uid"]


def test_hdf5_declared_per_event_shape_is_checked_against_file(root, tmp_path):
    builder, stacks = image_run(tmp_path, frames=5)
    run = builder.finish()
    write_planned(root, run, builder.batches(), provenance=PROVENANCE)
    node = root[run.uid]
    img = node["primary"].base["img"]
    assert img.shape == (5, H, W)  # TiledWriter registers (5, 1, H, W)
    numpy.testing.assert_array_equal(img.read(), stacks[0])
    assert set(node["primary"].base) == {"internal", "img"}
    assert any("Shape mismatch" in c or "shape mismatch" in c for c in node.metadata["_ingest"]["corrections"])
    assert validate(node, fix_errors=False, try_reading=True, raise_on_error=True, write_notes=False)
    assert "notes" not in root[run.uid].metadata


def test_several_stream_resources_of_one_key_are_concatenated(root, tmp_path):
    builder, stacks = image_run(tmp_path, frames=3, files=2)
    run = builder.finish()
    write_planned(root, run, builder.batches(), provenance=PROVENANCE)
    img = root[run.uid]["primary"].base["img"]
    assert img.shape == (6, H, W)
    numpy.testing.assert_array_equal(img.read(), numpy.concatenate(stacks))
    assert len(img.data_sources()[0].assets) == 2
    assert validate(root[run.uid], fix_errors=False, try_reading=True, raise_on_error=True)


def test_server_uri_is_what_gets_registered(root, tmp_path):
    builder, _ = image_run(tmp_path, frames=2)
    (source,) = builder.external.values()
    source.server_uri = "file://localhost/beamline/data/det_0.h5"
    run = builder.finish()
    write_planned(root, run, builder.batches(), provenance=PROVENANCE)
    asset = root[run.uid]["primary"].base["img"].data_sources()[0].assets[0]
    assert asset.data_uri == "file://localhost/beamline/data/det_0.h5"


def test_internal_arrays_go_to_zarr(root, tmp_path):
    builder = RunBuilder(tmp_path / "arr.jsonl")
    builder.stream("primary", {"spec": {"source": "s", "dtype": "array", "shape": [5, 5], "dtype_numpy": "<f8"}})
    arrays = [numpy.full((5, 5), i, dtype=float) for i in range(7)]
    for a in arrays:
        builder.event("primary", {"spec": a.tolist()})
    run = builder.finish()
    write_planned(root, run, builder.batches(size=3), provenance=PROVENANCE)
    node = root[run.uid]
    stream = node["primary"].base
    assert set(stream.keys()) == {"internal", "spec"}
    numpy.testing.assert_array_equal(stream["spec"].read(), numpy.stack(arrays))
    assert "spec" not in stream["internal"].read().columns
    assert "Internal array data for 'spec' in stream 'primary' written as zarr." in node.metadata["notes"]


def test_small_internal_arrays_stay_in_the_table(root, tmp_path):
    builder = RunBuilder(tmp_path / "small.jsonl")
    builder.stream("primary", {"pos": {"source": "s", "dtype": "array", "shape": [3], "dtype_numpy": "<f8"}})
    for i in range(4):
        builder.event("primary", {"pos": [i, i + 0.5, i + 1.0]})
    run = builder.finish()
    write_planned(root, run, builder.batches(), provenance=PROVENANCE)
    stream = root[run.uid]["primary"].base
    assert list(stream.keys()) == ["internal"]
    table = stream["internal"]
    assert str(table.structure().arrow_schema_decoded.field("pos").type) == "list<item: double>"
    # tiled 0.2.20 reads list cells back from DuckDB as their text, for TiledWriter's tables too
    assert len(table.read()) == 4


def test_ragged_arrays_and_wide_tables_follow_tiled_writer(root, tmp_path):
    builder = RunBuilder(tmp_path / "wide.jsonl")
    wide = {f"k{i:04d}": {"source": "s", "dtype": "number", "shape": []} for i in range(600)}
    ragged = {"trace": {"source": "s", "dtype": "array", "shape": [None], "dtype_numpy": "<f8"}}
    builder.stream("primary", {**wide, **ragged})
    traces = [[1.0], [1.0, 2.0, 3.0], [4.0, 5.0]]
    for i, trace in enumerate(traces):
        builder.event("primary", {**{k: float(i) for k in wide}, "trace": trace})
    run = builder.finish()
    write_planned(root, run, builder.batches(size=2), provenance=PROVENANCE)
    stream = root[run.uid]["primary"].base
    assert set(stream.keys()) == {"internal_0", "internal_1", "trace"}  # 2 + 1200 columns > 1024
    columns = [*stream["internal_0"].read().columns, *stream["internal_1"].read().columns]
    assert sorted(columns) == sorted(builder.rows["primary"][0].keys() - {"trace"})
    assert stream["internal_1"].read().shape[0] == 3
    assert [list(t) for t in stream["trace"].read()] == traces


def test_missing_external_file_writes_nothing(root, tmp_path):
    builder, _ = image_run(tmp_path, frames=2)
    run = builder.finish()
    (tmp_path / "det_0.h5").unlink()  # vanished between resolve and write
    with pytest.raises(IngestError) as info:
        write_planned(root, run, builder.batches(), provenance=PROVENANCE)
    assert info.value.problem.name == "stream_resource"
    assert run.uid not in root


def test_failure_half_way_removes_the_run(root, tmp_path):
    builder = scalar_run(tmp_path, n=6)
    run = builder.finish()

    def broken_batches():
        yield "primary", next(blocks_from_rows(builder.rows["primary"][:3], 3))
        broken = [{**row, "det": "not a number"} for row in builder.rows["primary"][3:]]
        yield "primary", next(blocks_from_rows(broken, len(broken)))

    seen = []

    def batches_then_check():
        yield from broken_batches()
        seen.append(run.uid in root)  # the run exists while being written, and reads as unfinished
        seen.append(root[run.uid].metadata["_ingest"]["state"])
        seen.append("stop" in root[run.uid].metadata)

    with pytest.raises(IngestError) as info:
        write_planned(root, run, batches_then_check(), provenance=PROVENANCE)
    assert seen == [True, "writing", False]
    assert info.value.problem.uid == run.uid
    assert "partial run was removed" in info.value.problem.reason
    assert run.uid not in root


def test_leftover_run_is_replaced(root, tmp_path):
    builder = scalar_run(tmp_path, n=3)
    run = builder.finish()
    leftover = root.create_container(key=run.uid, metadata={"start": run.start, "_ingest": {"state": "writing"}})
    leftover.create_container(key="primary")
    write_planned(root, run, builder.batches(), provenance=PROVENANCE)
    assert root[run.uid].metadata["_ingest"]["state"] == "complete"
    assert len(root[run.uid]["primary"].base["internal"].read()) == 3


def test_complete_run_is_not_touched(root, tmp_path):
    builder = scalar_run(tmp_path, n=3)
    run = builder.finish()
    write_planned(root, run, builder.batches(), provenance=PROVENANCE)
    before = root[run.uid].metadata
    with pytest.raises(RunAlreadyPresent) as info:
        write_planned(root, run, builder.batches(), provenance={"other": 1})
    assert info.value.node.metadata == before
    assert root[run.uid].metadata == before


def test_small_run_costs_fewer_requests_than_tiled_writer(catalog, tmp_path):
    from bluesky_tiled_plugins.writing.tiled_writer import TiledWriter

    builder = scalar_run(tmp_path, n=10)
    run = builder.finish()
    with count_requests(catalog.context) as requests:
        write_planned(catalog.root, run, builder.batches(size=100), provenance=PROVENANCE)
    ours = len(requests)

    reference = catalog.root.create_container(key="tiled-writer-reference")
    writer = TiledWriter(reference)
    with count_requests(catalog.context) as requests:
        for name, doc in builder.docs:
            writer(name, doc)
    theirs = len(requests)
    print(f"small run (2 streams, 10 + 2 rows): {ours} requests, TiledWriter {theirs}")
    assert ours <= 8 < theirs
