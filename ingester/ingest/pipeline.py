"""The pipeline that joins the stages for one run file: read → validate → normalize → resolve → plan → write.

Short on purpose: every decision lives in its stage. A run is written only when the whole file
has been read and the run is complete and valid, and only after every external file it names has
been found inside the allowed roots and checked (its node planned) — so a refused run leaves
nothing in Tiled. The file is read once (`ingester.read.single_pass`): its runs' event rows wait
in a spool (bounded memory, spilled to a temporary file beyond it) until they are written. What to
do with a run already in Tiled is decided here: the same run is already present, another is a
conflict (or replaced), and a writer process that may not touch it (`defer_existing`) defers it.
Nothing here parses arguments, prints or records anything in the ledger.
"""

from __future__ import annotations

import functools
import hashlib
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingester import __version__
from ingester.config import PathRules
from ingester.external.checksums import verify_checksums
from ingester.external.plan import plan_external_nodes
from ingester.external.resolve import resolve_external_paths
from ingester.ingest.failures import is_target_failure
from ingester.ingest.guards import WriteGuards
from ingester.ingest.outcomes import RunOutcome
from ingester.ingest.packs import document_mismatch, rules_for_file
from ingester.problems import IngestError, Problem, WriteFailed
from ingester.read.reports import FileReport, RunReport
from ingester.read.single_pass import FilePass, read_once
from ingester.read.source import Source
from ingester.read.spool import RowSpool
from ingester.runs import NormalizedRun
from ingester.status import MISSING_FILES, Outcome, Verdict
from ingester.target.outage import target_down
from ingester.write.existing import content_summary, differences
from ingester.write.layout import stream_metadata

__all__ = ["RunIngester", "RunPolicy", "FileResult", "file_digest"]


@dataclass
class FileResult:
    """What ingesting one file gave: an outcome a run, and what was read of it (None if not to the end)."""

    runs: list[RunOutcome]
    source: Source | None


def file_digest(path: Path) -> str:
    """The content hash recorded in the run's provenance (and the ledger)."""
    with open(path, "rb") as fh:
        return "sha256:" + hashlib.file_digest(fh, "sha256").hexdigest()


@dataclass(frozen=True)
class RunPolicy:
    """What a `RunIngester` does with the runs it meets.

    `replace`: a run already in Tiled with other content is replaced instead of refused as a conflict.
    `defer_existing`: a run whose uid is in Tiled already is left alone (`deferred`), leftover or not.
    `leftover_after`: a run in Tiled without stop, not ours, that changed less than this many seconds
    ago is left alone (`in-progress-elsewhere`: another writer is still writing it).
    """

    include_incomplete: bool = False
    dry_run: bool = False
    replace: bool = False
    defer_existing: bool = False
    leftover_after: float = 300.0


class RunIngester:
    """Ingests the runs of one file at a time into `client` (a tiled container, or the embedded
    catalog's `EmbeddedNode`; None for a dry run), as `policy` says. One outcome per run.

    `guards`: held while a run is written (one writer at a time to SQLite, one writer per uid).
    `stop`: once set (a `threading.Event` or alike), the runs not begun yet are left (`interrupted`);
    the run in hand is finished.
    """

    def __init__(
        self, client: Any, rules: PathRules, policy: RunPolicy = RunPolicy(), *,
        guards: WriteGuards | None = None, stop: Any = None,
    ):  # fmt: skip
        self.client = client
        self.rules = rules
        self.policy = policy
        self.guards = guards
        self.stop = stop

    def ingest(self, path: Path, *, report: FileReport | None = None) -> FileResult:
        """Validate (unless `report` is given), normalize, resolve and write every run of `path`."""
        with RowSpool() as spool:
            found = read_once(path, spool, report=report, build_rows=not self.policy.dry_run)
            report = found.report
            rules = rules_for_file(self.rules, path)
            problems = report.problems or document_mismatch(path, found.source, rules)
            if problems:  # the file itself cannot be read through, or is not what its pack says: refuse all of it
                refused = [_refused(path, run, problems, stage="read") for run in report.runs if run.uid]
                return FileResult(refused or [_refused(path, None, problems, stage="read")], found.source)
            outcomes = []
            for run in report.runs:
                if self.stop is not None and self.stop.is_set():
                    reason = "not looked at: the pass was stopped first"
                    outcome = RunOutcome(path, run.uid, Outcome.INTERRUPTED, reason, run.line)
                else:
                    outcome = self._ingest_run(path, run, found, spool, rules)
                outcome.documents = run.documents
                outcomes.append(outcome)
            return FileResult(outcomes, found.source)

    def _ingest_run(self, path: Path, run: RunReport, found: FilePass, spool: RowSpool, rules: PathRules) -> RunOutcome:
        if run.status == Verdict.INVALID:
            return _refused(path, run, run.problems, stage="validate")
        events = sum(run.streams.values())
        if run.status == Verdict.INCOMPLETE and not self.policy.include_incomplete:
            reason = found.report.truncated.reason if found.report.truncated else "run has no stop document"
            return RunOutcome(path, run.uid, Outcome.INCOMPLETE, reason, run.line, events=events)
        started = time.perf_counter()
        stage = "validate"  # where a fault is found: what the errors metric counts it under
        try:
            if run.uid in found.failed:
                raise found.failed[run.uid]
            stage = "resolve"
            resolved = resolve_external_paths(found.normalized[run.uid], rules)
            verify_checksums(resolved, rules)  # a pack's SHA256SUMS: reads the files, before anything is written
            if self.policy.dry_run:
                return RunOutcome(path, run.uid, Outcome.VALID, events=events)
            streams = {name: stream_metadata(info) for name, info in resolved.streams.items()}
            plans = plan_external_nodes(resolved, streams)  # reads the files: refuse before anything is written
            provenance = _provenance(path, run, found, resolved)
            stage = "write"
            with self.guards.writing(run.uid, path) if self.guards else nullcontext():
                outcome = self._write(path, run, resolved, spool, plans, provenance)
        except WriteFailed as err:  # the writer removed what it wrote; whose fault was it?
            if is_target_failure(err):
                return _failed(path, run, err.problem, err)
            return _refused(path, run, [_content_problem(path, run, err)], stage=stage)
        except IngestError as err:
            return _refused(path, run, [err.problem], stage=stage)
        except Exception as err:  # Tiled down, a file vanished mid-write...: nothing was written
            if not is_target_failure(err):
                return _refused(path, run, [_content_problem(path, run, err)], stage=stage)
            problem = Problem(str(path), run.line, f"write failed: {type(err).__name__}: {err}", "start", run.uid)
            return _failed(path, run, problem, err, stage=stage)
        finally:
            spool.discard(run.uid)
        outcome.events, outcome.seconds = events, time.perf_counter() - started
        if outcome.status == Outcome.INGESTED and resolved.stop and isinstance(resolved.stop.get("time"), (int, float)):
            outcome.lag = time.time() - resolved.stop["time"]  # written and committed: readable in Tiled now
        if outcome.status == Outcome.INGESTED and resolved.missing:
            outcome.missing = list(resolved.missing)
            outcome.reason = f"{MISSING_FILES} {'; '.join(resolved.missing)}"
        return outcome

    def _write(
        self, path: Path, run: RunReport, resolved: NormalizedRun, spool: RowSpool, plans: list, provenance: dict
    ) -> RunOutcome:
        """Write the run; decide what a run already in Tiled means."""
        from ingester.write.writer import RunAlreadyPresent, write_run

        blocks = spool.blocks(run.uid)
        write = functools.partial(
            write_run, self.client, resolved, blocks, provenance=provenance, plans=plans,
            leftover_after=self.policy.leftover_after,
        )  # fmt: skip
        try:
            write(replace_leftover=not self.policy.defer_existing)
            return RunOutcome(path, run.uid, Outcome.INGESTED)
        except RunAlreadyPresent as present:
            if self.policy.defer_existing:  # its tables may be in another writer process's DuckDB file
                return RunOutcome(path, run.uid, Outcome.DEFERRED, f"/{run.uid} is in the catalog already", run.line)
            if present.active_for is not None:
                reason = (
                    f"run {run.uid} is in Tiled without stop and changed {present.active_for:.0f} s ago "
                    f"(under --leftover-after {self.policy.leftover_after:g} s): another writer is still writing it"
                )
                return RunOutcome(path, run.uid, Outcome.IN_PROGRESS_ELSEWHERE, reason, run.line)
            found_differences = differences(present.node, resolved)
            if not found_differences:
                return RunOutcome(path, run.uid, Outcome.ALREADY_PRESENT, "the same run is already in Tiled", run.line)
            if not self.policy.replace:
                reason = (
                    f"conflict: run {run.uid} is already in Tiled with other content ({'; '.join(found_differences)})"
                )
                return _refused(path, run, [Problem(str(path), run.line, reason, "start", run.uid)], stage="write")
            present.node.delete(recursive=True, external_only=False)
        write()
        return RunOutcome(path, run.uid, Outcome.INGESTED)


def _content_problem(path: Path, run: RunReport, err: Exception) -> Problem:
    """Why Tiled would not take the run's content (a retry cannot fix it): the original error, and
    whether the partial run is gone, at the run's start line."""
    writing = isinstance(err, WriteFailed)
    cause = err.__cause__ if writing and err.__cause__ is not None else err
    what = str(cause).replace("\n", " ").strip()
    removed = f"; {err.problem.reason.rpartition('); ')[2]}" if writing else ""
    prefix = "Tiled will not store the run as it is" if writing else "the run cannot be ingested as it is"
    reason = f"{prefix}: {type(cause).__name__}: {what}{removed}"
    return Problem(str(path), run.line, reason, "start", run.uid)


def _provenance(path: Path, run: RunReport, found: FilePass, resolved: NormalizedRun) -> dict:
    """What the run's `_ingest` metadata says of where it came from: the bytes that were read."""
    source = found.source
    return {
        "source": {"path": str(path.absolute()), "hash": source.digest if source else None,
                   "size": source.size if source else None, "format": found.report.format, "line": run.line},
        "ingester": {"name": "bluesky-ingester", "version": __version__},
        "incomplete": run.status == Verdict.INCOMPLETE,
        **content_summary(resolved),
        **({"legacy": resolved.legacy} if resolved.legacy else {}),
        **({"missing": resolved.missing} if resolved.missing else {}),
    }  # fmt: skip


def _failed(path: Path, run: RunReport, problem: Problem, err: BaseException, stage: str = "write") -> RunOutcome:
    """A run the target failed to take; said so when the target as a whole is gone."""
    outcome = _refused(path, run, [problem], status=Outcome.FAILED, stage=stage)
    down = target_down(err)
    if down is not None:
        outcome.target_down = True
        outcome.reason = f"target unavailable: {down}"
    return outcome


def _refused(
    path: Path, run: RunReport | None, problems: list[Problem], status: Outcome = Outcome.REFUSED, *, stage: str
) -> RunOutcome:
    first = problems[0] if problems else None
    return RunOutcome(
        path=path,
        uid=run.uid if run else None,
        status=status,
        reason=first.reason if first else None,
        line=first.line if first else None,
        problems=problems,
        events=sum(run.streams.values()) if run else 0,
        documents=run.documents if run else 0,
        stage=stage,
    )
