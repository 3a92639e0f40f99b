"""Plan a run's external data nodes (files written by detectors), checked against the files.

For each stream and data key, bluesky-tiled-plugins' consolidator is built from the first
StreamResource (pointing at the file where the ingester can read it), extended with any further
StreamResources of the same key, and fed all of their StreamDatums; its data source is taken once,
with its final shape. That declared structure is then checked against the real file(s) with
bluesky-tiled-plugins' own `validate_data_source` (the check its validator runs): what is really
there (shape, chunks, dtype) is what gets registered, and a file holding less data than declared is
refused. Finally the asset URIs are rewritten to the ones Tiled should read; the writer registers
each planned node with one request.

Planning reads files but never talks to Tiled. Nothing here decides about the run as a whole.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING

from ingester.external.consolidate import consolidate, source_groups, source_problem, zeros_unknown
from ingester.runs import ExternalNodePlan, ExternalSource, NormalizedRun

if TYPE_CHECKING:  # tiled's structures cost ~0.1 s to import; a run without external data needs none
    from tiled.structures.data_source import DataSource

__all__ = ["plan_external_nodes"]


def plan_external_nodes(run: NormalizedRun, stream_metadata: dict[str, dict]) -> list[ExternalNodePlan]:
    """Build, check and rewrite the data source of every external node of the run (reads the files).

    `stream_metadata` is each stream node's metadata (the descriptor as the stream node stores it),
    which is what consolidators are given in TiledWriter too. StreamResources that no StreamDatum
    refers to are skipped, as TiledWriter never registers them.
    """
    plans = []
    for (stream, _), sources in source_groups(run, indexed_only=True).items():
        for source in sources:
            if not source.local_uri or not source.server_uri:
                raise source_problem(run, source, "the external file location was not resolved")
        consolidator, _ = consolidate(
            run, sources, stream_metadata[stream], lambda source: source.local_uri, "cannot index the external data"
        )
        declared = consolidator.get_data_source()
        checked, corrections = _check_against_files(run, sources[0], stream, declared, consolidator.metadata)
        _, _, unknown = zeros_unknown(sources[0].doc, stream_metadata[stream])
        corrections[:0] = [f"'{stream}/{_data_key(sources[0])}': {note}" for note in unknown]
        _rewrite_uris(checked, [(s.local_uri, s.server_uri) for s in sources])
        plans.append(ExternalNodePlan(stream, consolidator.data_key, checked, dict(consolidator.metadata), corrections))
    return plans


def _check_against_files(
    run: NormalizedRun, source: ExternalSource, stream: str, declared: DataSource, metadata: dict
) -> tuple[DataSource, list[str]]:
    """The data source as the files really are, and what was corrected; refuse data that is missing."""
    from bluesky_tiled_plugins.writing.validator import validate_data_source
    from tiled.structures.array import ArrayStructure

    title = f"{stream}/{_data_key(source)}"
    try:
        checked, notes = validate_data_source(copy.deepcopy(declared), fix_errors=True, metadata=metadata)
    except Exception as err:
        reason = str(err).replace("\n", " ").strip()
        raise source_problem(
            run, source, f"external data of '{title}' cannot be read: {type(err).__name__}: {reason}"
        ) from err
    if isinstance(declared.structure, ArrayStructure) and isinstance(checked.structure, ArrayStructure):
        wanted, present = math.prod(declared.structure.shape), math.prod(checked.structure.shape)
        if present < wanted:
            raise source_problem(
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
