"""Tell whether a run already in Tiled is the run a file holds: same content, or a conflict.

"Same content" means the same start and stop documents (as stored: truncated like TiledWriter, with
`tiled_access_tags`/`tiled_specs` taken out), the same streams with the same number of rows, and
the same external keys. Runs we wrote carry their row counts and external keys under `_ingest`;
for runs written by someone else (TiledWriter) they are read from the tree. Nothing is written here.
"""

from __future__ import annotations

from typing import Any

import orjson

from ingester.runs import NormalizedRun

__all__ = ["content_summary", "differences"]


def content_summary(run: NormalizedRun) -> dict[str, Any]:
    """What `differences` compares, from the run about to be written (also kept under `_ingest`)."""
    return {
        "rows": {name: info.row_count for name, info in run.streams.items()},
        "external": sorted(
            f"{source.stream}/{source.doc.get('data_key', '')}" for source in run.external.values() if source.stream
        ),
    }


def _canonical(doc: Any) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)


def _stored_start(start: dict[str, Any]) -> dict[str, Any]:
    from ingester.write.layout import truncate_json_overflow

    start = {k: v for k, v in start.items() if k not in ("tiled_access_tags", "tiled_specs")}
    return truncate_json_overflow(start)


def _tree_summary(node: Any) -> dict[str, Any]:
    """Row counts and external keys read from a run's tree (for runs without `_ingest`)."""
    rows: dict[str, int] = {}
    external: list[str] = []
    for stream in node:
        stream_node = node[stream]
        for key in stream_node:
            if key.startswith("internal"):
                if key == "internal":
                    rows[stream] = len(stream_node[key].read(["seq_num"]))
            elif "external" in (stream_node.metadata.get("data_keys", {}).get(key) or {}):
                external.append(f"{stream}/{key}")
        rows.setdefault(stream, 0)
    return {"rows": rows, "external": sorted(external)}


def differences(node: Any, run: NormalizedRun) -> list[str]:
    """How the run in Tiled (`node`) differs from `run`; empty when they are the same run."""
    from ingester.write.layout import truncate_json_overflow

    metadata = node.metadata
    found = []
    if _canonical(metadata.get("start")) != _canonical(_stored_start(run.start)):
        found.append("the start documents differ")
    stop = None if run.stop is None else truncate_json_overflow(run.stop)
    if _canonical(metadata.get("stop")) != _canonical(stop):
        found.append("the stop documents differ")
    ours = content_summary(run)
    recorded = metadata.get("_ingest") or {}
    theirs = (
        {"rows": recorded["rows"], "external": recorded["external"]}
        if "rows" in recorded and "external" in recorded
        else _tree_summary(node)
    )
    if theirs["rows"] != ours["rows"]:
        found.append(f"rows per stream differ: in Tiled {theirs['rows']}, in the file {ours['rows']}")
    if theirs["external"] != ours["external"]:
        found.append(f"external keys differ: in Tiled {theirs['external']}, in the file {ours['external']}")
    return found
