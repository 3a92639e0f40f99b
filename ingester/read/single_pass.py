"""Read a run file once: validate it, normalize each run and build each run's rows, in one pass.

Every document goes to the `RunValidator` (unless the file was validated before and its report is
given), which tells which run it belongs to, and while that run has no problem the run's
`RunNormalization` and `RowBuilder` see it too. Row blocks go to the `RowSpool` under the run's
uid. When the file has been read, the validation report is final; the runs that are valid (or
incomplete) are finished: a `NormalizedRun`, or the `IngestError` that normalization raised. The
rows of every other run are dropped from the spool.

Nothing here resolves a location or writes anything but the spool; the pipeline decides what is
written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ingester.problems import IngestError, Problem
from ingester.read.normalize import RunNormalization
from ingester.read.reader import read_documents
from ingester.read.rows import RowBuilder
from ingester.read.source import Source
from ingester.read.split import RunSplitter
from ingester.read.spool import RowSpool
from ingester.read.validate import FileReport, RunValidator
from ingester.runs import Document, NormalizedRun
from ingester.status import Verdict

__all__ = ["FilePass", "read_once"]


@dataclass
class FilePass:
    """What one pass over a file found: the validation report, and each run normalized (or why not).

    A run's rows are in the spool under its uid when it is in `normalized` and rows were built.
    `source` is what was read (size, mtime, hash), when the file was read to the end.
    """

    report: FileReport
    normalized: dict[str, NormalizedRun] = field(default_factory=dict)
    failed: dict[str, IngestError] = field(default_factory=dict)
    source: Source | None = None


class _RunWork:
    __slots__ = ("normalization", "rows", "failure")

    def __init__(self, path: Path, rows: RowBuilder | None):
        self.normalization = RunNormalization(path)
        self.rows = rows
        self.failure: IngestError | None = None


def read_once(path: Path, spool: RowSpool, *, report: FileReport | None = None, build_rows: bool = True) -> FilePass:
    """Validate (unless `report` is given), normalize and build the rows of every run of `path`."""
    reading = _Reading(Path(path), spool, report, build_rows)
    stream = read_documents(reading.path)
    problems: list[Problem] = []
    try:
        for document in stream:
            reading.feed(document)
    except IngestError as err:
        problems.append(err.problem)
    except RecursionError:
        problems.append(Problem(str(reading.path), stream.lines_read or None, "document nested too deeply"))
    if report is None:
        report = FileReport(path=reading.path, format=stream.format, truncated=stream.truncated, problems=problems)
        report.runs = reading.validator.finish()
        report.conclude()
    result = reading.finish(report)
    result.source = stream.source
    return result


class _Reading:
    """One pass over a file: which run each document belongs to (the validator's splitter, or ours
    when the file was validated before), and each valid run's normalization and rows."""

    def __init__(self, path: Path, spool: RowSpool, report: FileReport | None, build_rows: bool):
        self.path = path
        self.spool = spool
        self.build_rows = build_rows
        self.validator = RunValidator(path) if report is None else None
        self.splitter = RunSplitter() if report is not None else None
        self.skip = {run.uid for run in report.runs if run.status == Verdict.INVALID} if report is not None else set()
        self.works: dict[str, _RunWork] = {}

    def feed(self, document: Document) -> None:
        if self.validator is not None:
            run = self.validator.feed(document)
        else:
            run = self.splitter.assign(document)
        work = self.works.get(run) if run is not None else None
        if work is None:
            if run is None or run in self.skip or document.name != "start":
                return
            rows = RowBuilder(lambda stream, block: self.spool.add(run, stream, block)) if self.build_rows else None
            work = self.works[run] = _RunWork(self.path, rows)
        if work.failure is not None:
            return
        if self.validator is not None and self.validator.has_problems(run):
            self._give_up(work, run, None)
            return
        try:
            work.normalization.feed(document)
            if work.rows is not None:
                work.rows.feed(document)
        except Exception as error:  # noqa: BLE001 - the run is refused with the reason
            self._give_up(work, run, _failure(work, document, error))

    def finish(self, report: FileReport) -> FilePass:
        """Each usable run normalized and its rows flushed to the spool; the others' rows dropped."""
        result = FilePass(report)
        usable = set() if report.problems else {run.uid for run in report.runs if run.status != Verdict.INVALID}
        for uid, work in self.works.items():
            if uid not in usable or work.failure is not None:
                self.spool.discard(uid)
                if work.failure is not None:
                    result.failed[uid] = work.failure
                continue
            try:
                result.normalized[uid] = work.normalization.finish()
                if work.rows is not None:
                    work.rows.finish()
            except IngestError as err:
                self.spool.discard(uid)
                result.failed[uid] = err
        return result

    def _give_up(self, work: _RunWork, run: str, failure: IngestError | None) -> None:
        """Stop working on a run: it failed here, or (failure None) validation found a problem in it."""
        work.failure = failure or IngestError(Problem(str(self.path), None, "invalid run"))
        work.rows = None
        self.spool.discard(run)


def _failure(work: _RunWork, document: Document, error: Exception) -> IngestError:
    if isinstance(error, IngestError):
        return error
    # A document the validator let through but rows cannot be made of.
    uid = document.doc.get("uid")
    reason = f"cannot build the rows: {type(error).__name__}: {error}"
    problem = Problem(
        str(work.normalization.path), document.line, reason, document.name, uid if isinstance(uid, str) else None
    )
    return IngestError(problem)
