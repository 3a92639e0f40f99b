"""The pipeline that joins the stages for one run file: read → validate → normalize → resolve → write.

Short on purpose: every decision lives in its stage. A run is written only when the whole file
has been read and the run is complete and valid, and only after every external file it names has
been found inside the allowed roots — so a refused run leaves nothing in Tiled. The file is read
once (single_pass): its runs' event rows wait in a spool (bounded memory, spilled to a temporary
file beyond it) until they are written. Nothing here parses arguments or prints.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingester import __version__
from ingester.existing import content_summary, differences
from ingester.problems import IngestError, Problem, WriteFailed
from ingester.resolve import PathRules, resolve_external_paths
from ingester.single_pass import FilePass, read_once
from ingester.spool import RowSpool
from ingester.validate import FileReport, RunReport

__all__ = ["RunOutcome", "ingest_file", "file_digest", "rules_for"]

# What happened to a run (or to a file that holds no readable run).
WRITTEN, ALREADY_PRESENT, INCOMPLETE, REFUSED, FAILED = "ingested", "already-present", "incomplete", "refused", "failed"
# Not an outcome: one of several writer processes left the run for a later pass (ingester.workers).
DEFERRED = "deferred"


@dataclass
class RunOutcome:
    """The fate of one run of one file, as the summary, the report and the ledger tell it."""

    path: Path
    uid: str | None
    status: str
    reason: str | None = None
    line: int | None = None
    problems: list[Problem] = field(default_factory=list)
    events: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "uid": self.uid,
            "status": self.status,
            "reason": self.reason,
            "line": self.line,
            "problems": [str(p) for p in self.problems],
            "events": self.events,
        }


def file_digest(path: Path) -> str:
    """The content hash recorded in the run's provenance (and, later, the ledger)."""
    with open(path, "rb") as fh:
        return "sha256:" + hashlib.file_digest(fh, "sha256").hexdigest()


def rules_for(path: Path, rules: PathRules) -> PathRules:
    """With no data root configured, the directory of the run file is the data root."""
    if rules.data_roots:
        return rules
    return PathRules(data_roots=(path.parent.absolute(),), root_map=rules.root_map, server_paths=rules.server_paths)


def _refused(path: Path, run: RunReport | None, problems: list[Problem], status: str = REFUSED) -> RunOutcome:
    first = problems[0] if problems else None
    return RunOutcome(
        path=path,
        uid=run.uid if run else None,
        status=status,
        reason=first.reason if first else None,
        line=first.line if first else None,
        problems=problems,
        events=sum(run.streams.values()) if run else 0,
    )


def ingest_file(
    path: Path,
    client: Any,
    rules: PathRules,
    *,
    include_incomplete: bool = False,
    dry_run: bool = False,
    report: FileReport | None = None,
    replace: bool = False,
    digest: str | None = None,
    write_guard: Callable[[str], AbstractContextManager] | None = None,
) -> list[RunOutcome]:
    """Validate, normalize, resolve and write every run of one file; one outcome per run.

    `digest`: the file's content hash if the caller has it. `write_guard(uid)`: a context manager
    held while a run is written (one writer at a time to SQLite, one writer per uid). `replace`: a
    run already in Tiled with different content is replaced instead of refused as a conflict.
    """
    with RowSpool() as spool:
        found = read_once(path, spool, report=report, build_rows=not dry_run)
        report = found.report
        if report.problems:  # the file itself cannot be read through: refuse all of it
            return [_refused(path, run, report.problems) for run in report.runs if run.uid] or [
                _refused(path, None, report.problems)
            ]
        known = digest
        digest_of = functools.cache(lambda: known or file_digest(path))
        guard = write_guard or (lambda uid: nullcontext())
        return [
            _ingest_run(path, client, rules, run, found, spool, digest_of, include_incomplete=include_incomplete,
                        dry_run=dry_run, replace=replace, guard=guard)
            for run in report.runs
        ]


def _ingest_run(
    path: Path, client: Any, rules: PathRules, run: RunReport, found: FilePass, spool: RowSpool,
    digest: Callable[[], str], *, include_incomplete: bool, dry_run: bool, replace: bool,
    guard: Callable[[str], AbstractContextManager],
) -> RunOutcome:
    if run.status == "invalid":
        return _refused(path, run, run.problems)
    if run.status == "incomplete" and not include_incomplete:
        reason = found.report.truncated.reason if found.report.truncated else "run has no stop document"
        return RunOutcome(path, run.uid, INCOMPLETE, reason, run.line, events=sum(run.streams.values()))
    from ingester.embedded_nodes import RunDeferred
    from ingester.writer import RunAlreadyPresent, write_run

    started = time.perf_counter()
    try:
        if run.uid in found.failed:
            raise found.failed[run.uid]
        resolved = resolve_external_paths(found.normalized[run.uid], rules_for(path, rules))
        if dry_run:
            return RunOutcome(path, run.uid, "valid", events=sum(run.streams.values()))
        provenance = {
            "source": {"path": str(path.absolute()), "hash": digest(), "size": path.stat().st_size,
                       "format": found.report.format, "line": run.line},
            "ingester": {"name": "bluesky-ingester", "version": __version__},
            "incomplete": run.status == "incomplete",
            **content_summary(resolved),
        }
        blocks = spool.blocks(run.uid)
        with guard(run.uid):
            try:
                write_run(client, resolved, blocks, provenance=provenance)
            except RunAlreadyPresent as present:
                found_differences = differences(present.node, resolved)
                if not found_differences:
                    return RunOutcome(path, run.uid, ALREADY_PRESENT, "the same run is already in Tiled", run.line,
                                      events=sum(run.streams.values()))
                if not replace:
                    reason = f"conflict: run {run.uid} is already in Tiled with other content ({'; '.join(found_differences)})"
                    return _refused(path, run, [Problem(str(path), run.line, reason, "start", run.uid)])
                present.node.delete(recursive=True, external_only=False)
                write_run(client, resolved, blocks, provenance=provenance)
    except RunDeferred as err:
        return RunOutcome(path, run.uid, DEFERRED, str(err), run.line, events=sum(run.streams.values()))
    except WriteFailed as err:
        return _refused(path, run, [err.problem], status=FAILED)
    except IngestError as err:
        return _refused(path, run, [err.problem])
    except Exception as err:  # Tiled down, a file vanished mid-write...: the writer cleaned up
        problem = Problem(str(path), run.line, f"write failed: {type(err).__name__}: {err}", "start", run.uid)
        return _refused(path, run, [problem], status=FAILED)
    finally:
        spool.discard(run.uid)
    return RunOutcome(path, run.uid, WRITTEN, events=sum(run.streams.values()), seconds=time.perf_counter() - started)
