"""Write one normalized run into Tiled, in exactly the layout TiledWriter produces, all or nothing.

`write_run` knows the whole run before it writes: it checks the external files first (nothing is
written if one is missing or holds less than declared), then creates the run container marked
`_ingest.state = "writing"` (and without `stop`, so it reads as in progress), one container per
stream, the internal tables and arrays (writer_tables) and the external nodes (writer_external), and
finally adds `stop`, `notes` and `_ingest.state = "complete"` in one metadata update. If anything
fails after the run container exists, the container is deleted recursively before an `IngestError`
is raised. A leftover of a crash (state "writing", or no stop) is replaced; a complete run is never
touched: `RunAlreadyPresent` lets the caller decide.

Everything added beyond TiledWriter's layout lives under the run's `_ingest` key. This module never
reads run files, never opens the target (it is handed a tiled `Container`, or the embedded
catalog's `EmbeddedNode`) and never validates documents: that happened in earlier stages.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tiled.structures.core import Spec

from ingester.embedded_nodes import EmbeddedNode, is_collision
from ingester.problems import IngestError, Problem, WriteFailed
from ingester.rows import ColumnBlock
from ingester.runs import NormalizedRun, StreamInfo
from ingester.tiled_layout import truncate_json_overflow
from ingester.writer_external import plan_external_nodes, register_external_node
from ingester.writer_tables import AppendOnlyTable, StreamTableWriter, write_internal_data

__all__ = ["RunAlreadyPresent", "WriteResult", "write_run", "run_specs", "stream_metadata"]

logger = logging.getLogger(__name__)

RUN_SPEC = Spec("BlueskyRun", version="3.0")
STREAM_SPECS = [Spec("BlueskyEventStream", version="3.0"), Spec("composite")]
WRITING, COMPLETE = "writing", "complete"


class RunAlreadyPresent(Exception):
    """A complete run with this uid is already in the catalog; `node` is its client. Nothing was written."""

    def __init__(self, uid: str, node: Any):
        super().__init__(f"run {uid} is already present and complete")
        self.uid = uid
        self.node = node


@dataclass
class WriteResult:
    """What `write_run` wrote for one run."""

    uid: str
    rows: dict[str, int]  # internal rows per stream
    external: list[str]  # "<stream>/<key>" of each external node
    notes: list[str]  # TiledWriter's notes, as stored in the run metadata
    corrections: list[str]  # where the files disagreed with the documents (stored under _ingest)
    replaced_leftover: bool  # an unfinished run with this uid was deleted first
    seconds: float = 0.0
    streams: list[str] = field(default_factory=list)


def write_run(
    parent: Any, run: NormalizedRun, row_blocks: Iterable[tuple[str, ColumnBlock]], *, provenance: dict
) -> WriteResult:
    """Write `run` (its internal rows come from `row_blocks`, see ingester.rows) as a new child of `parent`.

    Raises `IngestError` (nothing of the run left behind) or `RunAlreadyPresent` (nothing touched).
    """
    started = time.perf_counter()
    start = copy.deepcopy(run.start)
    access_tags = start.pop("tiled_access_tags", None)
    specs = run_specs(start.pop("tiled_specs", None) or [])
    streams = {name: stream_metadata(info) for name, info in run.streams.items()}
    plans = plan_external_nodes(run, streams)  # reads the files: refuse before anything is written
    corrections = [note for plan in plans for note in plan.corrections]

    metadata = {"start": truncate_json_overflow(start), "_ingest": {**provenance, "state": WRITING}}
    run_node, replaced = _create_run_node(parent, run, metadata, specs, access_tags)
    try:
        notes = list(run.notes)
        writers = {}
        for name, md in streams.items():
            node = run_node.create_container(key=name, metadata=md, specs=STREAM_SPECS, access_tags=access_tags).base
            data_keys = run.streams[name].descriptor.get("data_keys", {})
            writers[name] = StreamTableWriter(node, name, data_keys, access_tags=access_tags, notes=notes)
        rows = write_internal_data(writers, row_blocks)
        for plan in plans:
            register_external_node(writers[plan.stream].node, plan, access_tags)
        run_node.update_metadata(metadata=_final_metadata(run, notes, corrections, provenance), drop_revision=True)
    except BaseException as err:
        left_behind = _discard(run_node, run.uid)
        if not isinstance(err, Exception) or (isinstance(err, IngestError) and not left_behind):
            raise
        if isinstance(err, IngestError):
            reason = f"{err.problem.reason}; {left_behind}"
            raise IngestError(Problem(err.problem.path, err.problem.line, reason, err.problem.name, err.problem.uid))
        outcome = left_behind or "the partial run was removed"
        reason = f"writing run {run.uid} failed ({type(err).__name__}: {err}); {outcome}"
        raise WriteFailed(Problem(str(run.path), None, reason, "start", run.uid)) from err
    return WriteResult(
        uid=run.uid,
        rows=rows,
        external=[f"{plan.stream}/{plan.key}" for plan in plans],
        notes=notes,
        corrections=corrections,
        replaced_leftover=replaced,
        seconds=time.perf_counter() - started,
        streams=list(streams),
    )


def run_specs(extra_specs: list) -> list[Spec]:
    """The start document's `tiled_specs` first, then BlueskyRun 3.0, as TiledWriter orders them."""
    return [*(Spec(s) if isinstance(s, str) else Spec(**s) for s in extra_specs), RUN_SPEC]


def stream_metadata(info: StreamInfo) -> dict[str, Any]:
    """A stream container's metadata: its first descriptor minus name/object_keys/run_start, and
    `_config_updates` for the later descriptors of the stream, truncated as TiledWriter does."""
    metadata = {k: v for k, v in info.descriptor.items() if k not in {"name", "object_keys", "run_start"}}
    if info.config_updates:
        updates = []
        for update in info.config_updates:
            entry = {"uid": update["uid"], "time": update["time"]}
            if update.get("configuration"):
                entry["configuration"] = update["configuration"]
            updates.append(entry)
        metadata["_config_updates"] = updates
    return truncate_json_overflow(metadata)


def is_leftover(metadata: dict) -> bool:
    """An unfinished write: ours marked "writing", or anyone's run without a stop document."""
    return metadata.get("_ingest", {}).get("state") == WRITING or "stop" not in metadata


class _PlainClients(Mapping):
    """A client's structure clients without those picked by our specs (BlueskyRun, BlueskyEventStream).

    Those are bluesky-tiled-plugins' clients, loaded through an entry point the first time a node
    with the spec is returned: importing them costs about 250 MB and a second, and writing needs
    none of what they add. The nodes we create are then tiled's own Container / CompositeClient,
    and our `AppendOnlyTable` for tables.
    """

    HIDDEN = frozenset({"BlueskyRun", "BlueskyEventStream"})

    def __init__(self, clients: Mapping):
        self.clients = clients

    def __getitem__(self, key: str) -> Any:
        if key in self.HIDDEN:
            raise KeyError(key)
        if key == "table":  # tables are only appended to: a client that does not import pandas and dask
            return AppendOnlyTable
        return self.clients[key]

    def __iter__(self) -> Iterator[str]:
        return (key for key in self.clients if key not in self.HIDDEN)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def plain_variation(node: Any) -> Any:
    """`node` (a tiled client) returning tiled's own clients for its children, see `_PlainClients`."""
    clients = node.structure_clients
    if isinstance(clients, _PlainClients):
        return node
    return node.new_variation(structure_clients=_PlainClients(clients))


def _create_run_node(parent: Any, run: NormalizedRun, metadata: dict, specs: list, access_tags: Any):
    """Create the run container; replace a leftover with the same uid, refuse a complete one.

    `parent` is a tiled client, or an `EmbeddedNode` (the embedded catalog written directly)."""
    writer = parent if isinstance(parent, EmbeddedNode) else plain_variation(parent)
    try:
        return writer.create_container(key=run.uid, metadata=metadata, specs=specs, access_tags=access_tags), False
    except Exception as err:
        if not is_collision(err):
            raise
    existing = parent[run.uid]
    if not is_leftover(existing.metadata):
        raise RunAlreadyPresent(run.uid, existing)
    logger.info("run %s: replacing an unfinished earlier write", run.uid)
    existing.delete(recursive=True, external_only=False)
    return writer.create_container(key=run.uid, metadata=metadata, specs=specs, access_tags=access_tags), True


def _final_metadata(run: NormalizedRun, notes: list[str], corrections: list[str], provenance: dict) -> dict:
    metadata: dict[str, Any] = {}
    if run.stop is not None:
        stop = dict(run.stop)
        notes[:0] = [n for n in stop.pop("_run_normalizer_notes", []) if n not in notes]
        metadata["stop"] = truncate_json_overflow(stop)
    notes[:] = list(dict.fromkeys(notes))
    if notes:
        metadata["notes"] = notes
    ingest = {**provenance, "state": COMPLETE}
    if corrections:
        ingest["corrections"] = corrections
    metadata["_ingest"] = ingest
    return metadata


def _discard(run_node: Any, uid: str) -> str | None:
    """Delete a half-written run; if that fails too, say so (it stays marked "writing", so the next
    write of the same run replaces it) instead of hiding the original error."""
    try:
        run_node.delete(recursive=True, external_only=False)
    except Exception as err:
        logger.warning("run %s: could not remove the partial run after a failed write", uid, exc_info=True)
        return f"the partial run could not be removed ({type(err).__name__}: {err}) and is marked 'writing'"
    return None
