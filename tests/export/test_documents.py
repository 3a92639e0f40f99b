"""The documents `export` rebuilds from Tiled (ingester/export/documents.py), against bluesky-tiled-plugins'
own document export (its server-side JSON-seq exporter, which BlueskyRun.documents() reads) and
event-model's schemas, for every run of catalog A.

The plugin's exporter yields events one by one, names its own uids, and reads every array node beside
`internal` as a data key; ours yields event pages and reads the layout the README describes (columns
moved out of the table for their names, data keys renamed with a trailing `_`). Where the two layouts
agree, the content must: start, stop, descriptors, every event's data and timestamps by seq_num, and
each external node's StreamResource and StreamDatum.
"""

from __future__ import annotations

import asyncio
import json

import event_model
import pytest

from ingester.cli.app import app
from ingester.export.documents import read_run, run_documents
from ingester.target.layout import CatalogLayout, build_catalog
from ingester.target.targets import open_embedded
from support.cli import runner

# Runs whose layout the plugin's exporter does not read back (see the module's docstring).
COLLISIONS = "26b2f145-985b-569b-ab2b-d629b7a85cd2"  # facility/column_collisions.jsonl
RESERVED = "0334254b-3c8f-4d1b-950c-ac50fc76436a"  # good/count_reserved_keys.jsonl


@pytest.fixture(scope="module")
def both(catalog_a):
    """uid -> (our documents, the plugin's documents) for every run of catalog A."""
    with open_embedded(catalog_a) as target:
        ours = {uid: list(run_documents(read_run(target.root, uid))) for uid in target.root}
    return {uid: (docs, asyncio.run(_plugin_documents(catalog_a, uid))) for uid, docs in ours.items()}


async def _plugin_documents(catalog_dir, uid: str) -> list[tuple[str, dict]]:
    from bluesky_tiled_plugins.exporters import json_seq_exporter

    catalog = build_catalog(CatalogLayout(catalog_dir), create=False)

    async def everything(adapter):
        return adapter

    adapter = await catalog.lookup_adapter([uid])
    if uid == COLLISIONS:  # the plugin's exporter fails on it (test_the_plugin_fails_on_moved_columns)
        return []
    lines = [line.lstrip("\x1e") async for line in json_seq_exporter(None, adapter, adapter.metadata(), everything)]
    await catalog.context.engine.dispose()
    return [(item["name"], item["doc"]) for item in map(json.loads, lines)]


def _events(documents) -> dict[tuple[str, int], str]:
    """(descriptor, seq_num) -> the event's data and timestamps as JSON (NaN equals NaN there)."""
    rows = {}
    for name, doc in documents:
        if name == "event_page":
            for doc_ in event_model.unpack_event_page(doc):
                rows[doc_["descriptor"], doc_["seq_num"]] = json.dumps(
                    [doc_["data"], doc_["timestamps"]], sort_keys=True
                )
        elif name == "event":
            rows[doc["descriptor"], doc["seq_num"]] = json.dumps([doc["data"], doc["timestamps"]], sort_keys=True)
    return rows


def _only(documents, name: str) -> list[dict]:
    return [doc for n, doc in documents if n == name]


def test_every_document_passes_event_models_schemas(both):
    for uid, (ours, _) in both.items():
        for name, doc in ours:
            event_model.schema_validators[event_model.DocumentNames[name]].validate(doc)
        assert ours[0][0] == "start" and ours[-1][0] == "stop", uid


def test_start_stop_and_descriptors_are_the_plugins(both):
    for uid, (ours, theirs) in both.items():
        if uid == COLLISIONS:
            continue
        assert _only(ours, "start") == _only(theirs, "start"), uid
        assert _only(ours, "stop") == _only(theirs, "stop"), uid
        if uid != RESERVED:  # ours are named as the documents named them: `time`, not `time_`
            key = lambda d: (d["name"], d["time"])  # noqa: E731
            assert sorted(_only(ours, "descriptor"), key=key) == sorted(_only(theirs, "descriptor"), key=key), uid


def test_the_plugin_fails_on_moved_columns(catalog_a):
    """Where the writer moved a column out of the table (README "Layout in Tiled"), the plugin's
    exporter looks for its timestamps in the table and fails: ours is the only export of that run."""
    from bluesky_tiled_plugins.exporters import json_seq_exporter

    async def export_it():
        catalog = build_catalog(CatalogLayout(catalog_a), create=False)
        adapter = await catalog.lookup_adapter([COLLISIONS])

        async def everything(node):
            return node

        try:
            return [line async for line in json_seq_exporter(None, adapter, adapter.metadata(), everything)]
        finally:
            await catalog.context.engine.dispose()

    with pytest.raises(KeyError):
        asyncio.run(export_it())


def test_events_hold_the_plugins_values(both):
    for uid, (ours, theirs) in both.items():
        if uid in (COLLISIONS, RESERVED):
            continue
        assert _events(ours) == _events(theirs), uid


def test_stream_resources_and_datums_agree_with_the_plugins(both):
    for uid, (ours, theirs) in both.items():
        our_resources = {d["data_key"]: d for d in _only(ours, "stream_resource")}
        their_resources = {d["data_key"]: d for d in _only(theirs, "stream_resource")}
        if uid == COLLISIONS:
            assert not our_resources
            continue
        assert set(our_resources) == set(their_resources), uid
        for key, our in our_resources.items():
            their = their_resources[key]
            assert our["mimetype"] == their["mimetype"], (uid, key)
            if "npy" in our["mimetype"]:  # ours names the files as the NPY consolidator does: <uri>_<n>.npy
                assert their["uri"].startswith(our["uri"].rsplit("/", 1)[0]), (uid, key)
                continue
            assert our["uri"] == their["uri"], (uid, key)
            # ours adds what the consolidator keeps in the node's metadata (spec, multiplier); with a
            # multiplier the datum shape starts with it, which the plugin does not count: its join_method differs
            theirs_ = {
                k: v
                for k, v in their["parameters"].items()
                if k != "join_method" or "multiplier" not in our["parameters"]
            }
            assert theirs_.items() <= our["parameters"].items(), (uid, key)
        our_datums = sorted((d["indices"]["start"], d["indices"]["stop"]) for d in _only(ours, "stream_datum"))
        their_datums = sorted((d["indices"]["start"], d["indices"]["stop"]) for d in _only(theirs, "stream_datum"))
        # the plugin counts datums from the declared shape alone: with a multiplier (legacy areaDetector
        # frames) it finds none (3 // 4 == 0); ours registers the node again as it is (the round trip)
        if not any("npy" in r["mimetype"] or "multiplier" in r["parameters"] for r in our_resources.values()):
            assert our_datums == their_datums, uid


def test_exported_files_validate(catalog_a, tmp_path):
    """`ingester validate` (event-model's schemas, and every run as a whole: order, references) says ok."""
    result = runner.invoke(app, ["export", str(tmp_path / "pack"), "--catalog", str(catalog_a)])
    assert result.exit_code == 0, result.output
    checked = runner.invoke(app, ["validate", *map(str, sorted((tmp_path / "pack" / "documents").iterdir()))])
    assert checked.exit_code == 0, checked.output
