"""Plan and register a run's external data nodes (files written by detectors), checked against the files.

For each stream and data key, bluesky-tiled-plugins' consolidator is built from the first
StreamResource (pointing at the file where the ingester can read it), extended with any further
StreamResources of the same key, and fed all of their StreamDatums; its data source is taken once,
with its final shape. That declared structure is then checked against the real file(s) with
bluesky-tiled-plugins' own `validate_data_source` (the check its validator runs): what is really
there (shape, chunks, dtype) is what gets registered, and a file holding less data than declared is
refused. Finally the asset URIs are rewritten to the ones Tiled should read and each node is
registered with one request.

Planning reads files but never talks to Tiled; registering talks to Tiled but never reads files.
Nothing here deletes anything or decides about the run as a whole.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

from tiled.structures.array import ArrayStructure
from tiled.structures.data_source import DataSource

from ingester.problems import IngestError, Problem
from ingester.runs import ExternalSource, NormalizedRun

__all__ = ["ExternalNodePlan", "plan_external_nodes", "register_external_node"]


@dataclass
class ExternalNodePlan:
    """One external node to register: where, its final data source (server URIs) and metadata."""

    stream: str
    key: str
    data_source: DataSource
    metadata: dict[str, Any]
    corrections: list[str] = field(default_factory=list)  # what the files said that the documents did not


def plan_external_nodes(run: NormalizedRun, stream_metadata: dict[str, dict]) -> list[ExternalNodePlan]:
    """Build, check and rewrite the data source of every external node of the run (reads the files).

    `stream_metadata` is each stream node's metadata (the descriptor as the stream node stores it),
    which is what consolidators are given in TiledWriter too. StreamResources that no StreamDatum
    refers to are skipped, as TiledWriter never registers them.
    """
    groups: dict[tuple[str, str], list[ExternalSource]] = {}
    for source in run.external.values():
        if source.stream is None or not source.stream_datums:
            continue
        groups.setdefault((source.stream, source.doc.get("data_key", "")), []).append(source)
    plans = []
    for (stream, _), sources in groups.items():
        if stream not in stream_metadata:
            raise _problem(run, sources[0], f"stream {stream!r} has no descriptor")
        plans.append(_plan_node(run, stream, sources, stream_metadata[stream]))
    return plans


def register_external_node(stream_node: Any, plan: ExternalNodePlan, access_tags: list | None) -> Any:
    """Register one planned node in its stream container: a single request."""
    return stream_node.new(
        key=plan.key,
        structure_family=plan.data_source.structure_family,
        data_sources=[plan.data_source],
        metadata=plan.metadata,
        specs=[],
        access_tags=access_tags,
    )


def _plan_node(run: NormalizedRun, stream: str, sources: list[ExternalSource], metadata: dict) -> ExternalNodePlan:
    from bluesky_tiled_plugins.writing.consolidators import consolidator_factory

    consolidator = None
    for source in sources:
        if not source.local_uri or not source.server_uri:
            raise _problem(run, source, "the external file location was not resolved")
        # Consolidators may modify the document they are given (NPY sets its template): hand them a copy.
        doc = {**copy.deepcopy(source.doc), "uri": source.local_uri}
        try:
            if consolidator is None:
                consolidator = consolidator_factory(doc, metadata)
            else:
                consolidator.update_from_stream_resource(doc)
            for datum in source.stream_datums:
                consolidator.consume_stream_datum(datum)
        except Exception as err:
            raise _problem(run, source, f"cannot index the external data: {type(err).__name__}: {err}") from err
    declared = consolidator.get_data_source()
    checked, corrections = _check_against_files(run, sources[0], stream, declared, consolidator.metadata)
    _rewrite_uris(checked, [(s.local_uri, s.server_uri) for s in sources])
    return ExternalNodePlan(stream, consolidator.data_key, checked, dict(consolidator.metadata), corrections)


def _check_against_files(
    run: NormalizedRun, source: ExternalSource, stream: str, declared: DataSource, metadata: dict
) -> tuple[DataSource, list[str]]:
    """The data source as the files really are, and what was corrected; refuse data that is missing."""
    from bluesky_tiled_plugins.writing.validator import validate_data_source

    title = f"{stream}/{_data_key(source)}"
    try:
        checked, notes = validate_data_source(copy.deepcopy(declared), fix_errors=True, metadata=metadata)
    except Exception as err:
        reason = str(err).replace("\n", " ").strip()
        raise _problem(run, source, f"external data of '{title}' cannot be read: {type(err).__name__}: {reason}") from err
    if isinstance(declared.structure, ArrayStructure) and isinstance(checked.structure, ArrayStructure):
        wanted, present = math.prod(declared.structure.shape), math.prod(checked.structure.shape)
        if present < wanted:
            raise _problem(
                run,
                source,
                f"external data of '{title}' is incomplete: the documents index shape "
                f"{tuple(declared.structure.shape)} but the file(s) hold {tuple(checked.structure.shape)}",
            )
    return checked, [f"'{title}': {note}" for note in notes]


def _rewrite_uris(data_source: DataSource, prefixes: list[tuple[str, str]]) -> None:
    """Replace where the ingester read each asset by where Tiled should read it (longest prefix wins)."""
    ordered = sorted(set(prefixes), key=lambda pair: len(pair[0]), reverse=True)
    for asset in data_source.assets:
        for local, server in ordered:
            if asset.data_uri.startswith(local):
                asset.data_uri = server + asset.data_uri[len(local) :]
                break


def _data_key(source: ExternalSource) -> str:
    return source.doc.get("data_key", "")


def _problem(run: NormalizedRun, source: ExternalSource, reason: str) -> IngestError:
    return IngestError(Problem(str(run.path), source.line, reason, source.source_name, source.doc.get("uid")))
