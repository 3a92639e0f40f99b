"""bluesky-tiled-plugins' consolidators, one per (stream, data key), built as TiledWriter builds them.

A consolidator turns a StreamResource and its StreamDatums into the files they reference and the
array they make. TiledWriter keeps one per (stream, data key): the first StreamResource creates it,
later ones of the same key extend it, and every StreamDatum is fed to it in order. Resolve uses it
to enumerate the files a source references (from the location as written), planning to get the
node's data source (from the resolved location). Importing bluesky-tiled-plugins costs about 250 MB,
so only runs with external data pay for it. Nothing here checks that a file exists or talks to Tiled.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ingester.problems import IngestError, Problem
from ingester.runs import ExternalSource, NormalizedRun

__all__ = ["source_groups", "consolidate", "source_problem", "document_uid", "zeros_unknown"]


def source_groups(run: NormalizedRun, *, indexed_only: bool = False) -> dict[tuple[str, str], list[ExternalSource]]:
    """The run's sources of a known stream, grouped by (stream, data key) in file order.

    `indexed_only`: only sources some StreamDatum refers to (TiledWriter registers no node for the others)."""
    groups: dict[tuple[str, str], list[ExternalSource]] = {}
    for source in run.external.values():
        if source.stream is None or source.stream not in run.streams:
            continue
        if indexed_only and not source.stream_datums:
            continue
        groups.setdefault((source.stream, source.doc.get("data_key", "")), []).append(source)
    return groups


def consolidate(
    run: NormalizedRun,
    sources: list[ExternalSource],
    metadata: dict,
    uri_of: Callable[[ExternalSource], str],
    what: str,
) -> tuple[Any, list[int]]:
    """The consolidator of one group, fed every source (its `uri` replaced by `uri_of(source)`) and
    every StreamDatum; and, for each source, how many assets came before it. A fault refuses the
    source with the reason `what: <error>`."""
    from bluesky_tiled_plugins.writing.consolidators import consolidator_factory

    consolidator = None
    before: list[int] = []
    for source in sources:
        # Consolidators may modify the document they are given (NPY sets its template): hand them a copy.
        doc = {**copy.deepcopy(source.doc), "uri": uri_of(source)}
        doc, metadata, _ = zeros_unknown(doc, metadata)
        try:
            if consolidator is None:
                before.append(0)
                consolidator = consolidator_factory(doc, metadata)
            else:
                before.append(len(consolidator.assets))
                consolidator.update_from_stream_resource(doc)
            for datum in source.stream_datums:
                consolidator.consume_stream_datum(datum)  # consolidators do not modify StreamDatums
        except Exception as error:  # noqa: BLE001 - any consolidator fault refuses the source
            raise source_problem(run, source, f"{what}: {type(error).__name__}: {error}") from error
    return consolidator, before


def source_problem(run: NormalizedRun, source: ExternalSource, reason: str) -> IngestError:
    """An `IngestError` naming the document in the run file that the source came from."""
    return IngestError(Problem(str(run.path), source.line, reason, source.source_name, document_uid(run, source)))


def document_uid(run: NormalizedRun, source: ExternalSource) -> str:
    """The uid of the document in the run file: a legacy Resource's, not the derived StreamResource's."""
    uid = source.doc["uid"]
    if source.source_name == "resource" and source.stream in run.streams:
        for desc_uid in run.streams[source.stream].descriptor_uids:
            suffix = f"-{desc_uid}-{source.doc['data_key']}"
            if uid.endswith(suffix):
                return uid[: -len(suffix)]
    return uid


def zeros_unknown(doc: dict, metadata: dict) -> tuple[dict, dict, list[str]]:
    """A StreamResource and its stream's descriptor with zeros taken as "unknown", and what was changed.

    ophyd-async describes a detector before it is armed as `shape: [1, 0, 0]` with `chunk_shape:
    [0, 0, 0]`, which no consolidator takes. A `chunk_shape` with a zero is left out (one chunk, until
    the file says otherwise) and a data key shape with a zero becomes `[]`: planning then registers the
    shape and chunks the file holds. `doc` and `metadata` are not modified; copies are returned.
    """
    notes = []
    parameters = doc.get("parameters") or {}
    chunk_shape = parameters.get("chunk_shape")
    if isinstance(chunk_shape, list) and any(isinstance(d, int) and d <= 0 for d in chunk_shape):
        doc = {**doc, "parameters": {k: v for k, v in parameters.items() if k != "chunk_shape"}}
        notes.append(f"chunk_shape {chunk_shape} has zeros (unknown): the file's chunking is registered")
    key = doc.get("data_key", "")
    spec = (metadata.get("data_keys") or {}).get(key) or {}
    shape = spec.get("shape")
    if isinstance(shape, list) and 0 in shape:
        metadata = {**metadata, "data_keys": {**metadata["data_keys"], key: {**spec, "shape": []}}}
        notes.append(f"shape {shape} has zeros (unknown): the file's shape is registered")
    return doc, metadata, notes
