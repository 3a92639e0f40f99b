"""Write one normalized run into Tiled, in exactly the layout TiledWriter produces, all or nothing.

`write_run` is given the whole run: its documents normalized and resolved, its rows as blocks, and
its external nodes planned and checked against the files (`ingester.external.plan`). It creates
the run container marked `_ingest.state = "writing"` (and without `stop`, so it reads as in
progress), one container per stream, the internal tables and arrays (`ingester.write.tables`) and
the external nodes, and finally adds `stop`, `notes` and `_ingest.state = "complete"` in one
metadata update. If anything fails after the run container exists, the container is deleted
recursively before an `IngestError` is raised. A leftover of a crash (state "writing", or no stop)
is replaced unless the caller says not to; a complete run is never touched: `RunAlreadyPresent`
lets the caller decide. A run without stop that we did not write may still be being written by
another writer (a live TiledWriter): it is replaced only once it has not changed for
`leftover_after` seconds, as its documents tell (`last_change`); until then it is left alone
(`RunAlreadyPresent` with `active`). Our own "writing" leftovers are guarded by run claims.

Everything added beyond TiledWriter's layout lives under the run's `_ingest` key. This module never
reads a file (run file or external file), never opens the target (it is handed a tiled `Container`,
or the embedded catalog's `EmbeddedNode`) and never validates documents.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from ingester.columns import ColumnBlock
from ingester.problems import IngestError, Problem, WriteFailed
from ingester.runs import ExternalNodePlan, NormalizedRun
from ingester.target.clients import plain_variation
from ingester.target.embedded import EmbeddedNode, is_collision
from ingester.write.layout import STREAM_SPECS, run_specs, stream_metadata, truncate_json_overflow
from ingester.write.tables import StreamTableWriter, write_internal_data

__all__ = ["RunAlreadyPresent", "write_run", "is_leftover", "last_change"]

logger = logging.getLogger(__name__)

WRITING, COMPLETE = "writing", "complete"


class RunAlreadyPresent(Exception):
    """A run with this uid is in the catalog already and was left alone; `node` is its client.

    `leftover`: it is an unfinished write (see `is_leftover`), which `write_run` replaces unless told
    not to. Nothing was written."""

    def __init__(self, uid: str, node: Any, *, leftover: bool = False, active_for: float | None = None):
        super().__init__(f"run {uid} is already present" + (" (unfinished)" if leftover else " and complete"))
        self.uid = uid
        self.node = node
        self.leftover = leftover
        self.active_for = active_for  # an unfinished run another writer changed this many seconds ago


def write_run(
    parent: Any,
    run: NormalizedRun,
    row_blocks: Iterable[tuple[str, ColumnBlock]],
    *,
    provenance: dict,
    plans: Sequence[ExternalNodePlan] = (),
    replace_leftover: bool = True,
    leftover_after: float = 0.0,
) -> None:
    """Write `run` as a new child of `parent`: its internal rows from `row_blocks` (see ingester.read.rows),
    its external nodes as `plans` (checked against the files already, see ingester.external.plan).

    Raises `IngestError` (nothing of the run left behind) or `RunAlreadyPresent` (nothing touched).
    """
    start = copy.deepcopy(run.start)
    access_tags = start.pop("tiled_access_tags", None)
    specs = run_specs(start.pop("tiled_specs", None) or [])
    streams = {name: stream_metadata(info) for name, info in run.streams.items()}
    corrections = [note for plan in plans for note in plan.corrections]

    metadata = {"start": truncate_json_overflow(start), "_ingest": {**provenance, "state": WRITING}}
    run_node = _create_run_node(parent, run, metadata, specs, access_tags, replace_leftover, leftover_after)
    try:
        notes = list(run.notes)
        writers = {}
        for name, md in streams.items():
            node = run_node.create_container(key=name, metadata=md, specs=STREAM_SPECS, access_tags=access_tags).base
            data_keys = run.streams[name].descriptor.get("data_keys", {})
            writers[name] = StreamTableWriter(node, name, data_keys, access_tags=access_tags, notes=notes)
        write_internal_data(writers, row_blocks)
        for plan in plans:
            _register_external_node(writers[plan.stream].node, plan, access_tags)
        run_node.update_metadata(metadata=_final_metadata(run, notes, corrections, provenance), drop_revision=True)
    except BaseException as err:
        _fail(err, run_node, run)


def _fail(err: BaseException, run_node: Any, run: NormalizedRun) -> NoReturn:
    """Remove the half-written run and raise what the caller should see: the input's fault as an
    `IngestError`, the target's as `WriteFailed`, saying whether the partial run is gone."""
    left_behind = _discard(run_node, run.uid)
    if not isinstance(err, Exception) or (isinstance(err, IngestError) and not left_behind):
        raise err
    if isinstance(err, IngestError):
        reason = f"{err.problem.reason}; {left_behind}"
        raise IngestError(Problem(err.problem.path, err.problem.line, reason, err.problem.name, err.problem.uid))
    outcome = left_behind or "the partial run was removed"
    reason = f"writing run {run.uid} failed ({type(err).__name__}: {err}); {outcome}"
    raise WriteFailed(Problem(str(run.path), None, reason, "start", run.uid)) from err


def _register_external_node(stream_node: Any, plan: ExternalNodePlan, access_tags: list | None) -> Any:
    """Register one planned external node in its stream container: a single request."""
    return stream_node.new(
        key=plan.key,
        structure_family=plan.data_source.structure_family,
        data_sources=[plan.data_source],
        metadata=plan.metadata,
        specs=[],
        access_tags=access_tags,
    )


def is_leftover(metadata: dict) -> bool:
    """An unfinished write: ours marked "writing", or anyone's run without a stop document."""
    return metadata.get("_ingest", {}).get("state") == WRITING or "stop" not in metadata


def last_change(node: Any) -> float | None:
    """When a run in Tiled last changed, as its documents tell (epoch seconds, None if they do not):
    the newest of its start's time, its streams' descriptor and configuration-update times and the
    time of each stream's newest event row."""
    times = [(node.metadata.get("start") or {}).get("time")]
    for name in node:
        stream = getattr(node[name], "base", node[name])
        metadata = stream.metadata
        times += [metadata.get("time"), *(u.get("time") for u in metadata.get("_config_updates") or [])]
        if "internal" in stream:
            column = stream["internal"].read(["time"])["time"]
            times.append(float(column.max()) if len(column) else None)
    known = [t for t in times if isinstance(t, (int, float)) and not isinstance(t, bool)]
    return max(known, default=None)


def _still_written(existing: Any, leftover_after: float) -> float | None:
    """Seconds since an unfinished run that is not ours last changed, if under `leftover_after`."""
    if leftover_after <= 0 or (existing.metadata.get("_ingest") or {}).get("state") == WRITING:
        return None
    changed = last_change(existing)
    age = time.time() - changed if changed is not None else math.inf
    return age if age < leftover_after else None


def _create_run_node(
    parent: Any, run: NormalizedRun, metadata: dict, specs: list, access_tags: Any, replace_leftover: bool,
    leftover_after: float,
) -> Any:  # fmt: skip
    """Create the run container; replace a leftover with the same uid (if `replace_leftover`, and it
    is not still being written by another writer), else raise `RunAlreadyPresent`.

    `parent` is a tiled client, or an `EmbeddedNode` (the embedded catalog written directly)."""
    writer = parent if isinstance(parent, EmbeddedNode) else plain_variation(parent)
    try:
        return writer.create_container(key=run.uid, metadata=metadata, specs=specs, access_tags=access_tags)
    except Exception as err:
        if not is_collision(err):
            raise
    existing = parent[run.uid]
    leftover = is_leftover(existing.metadata)
    if not (leftover and replace_leftover):
        raise RunAlreadyPresent(run.uid, existing, leftover=leftover)
    if (age := _still_written(existing, leftover_after)) is not None:
        raise RunAlreadyPresent(run.uid, existing, leftover=True, active_for=age)
    logger.info("run %s: replacing an unfinished earlier write", run.uid)
    existing.delete(recursive=True, external_only=False)
    return writer.create_container(key=run.uid, metadata=metadata, specs=specs, access_tags=access_tags)


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
        logger.debug("run %s: could not remove the partial run after a failed write", uid, exc_info=True)
        return f"the partial run could not be removed ({type(err).__name__}: {err}) and is marked 'writing'"
    return None
