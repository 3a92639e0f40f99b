"""Read a run file once: validate it, normalize each run and build each run's rows, in one pass.

Every document goes to the `RunValidator` (unless the file was validated before and its report is
given); a `RunSplitter` tells which run it belongs to, and while that run has no problem the run's
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

from ingester.normalize import RunNormalization
from ingester.problems import IngestError, Problem
from ingester.reader import read_documents
from ingester.rows import RowBuilder
from ingester.runs import Document, NormalizedRun
from ingester.split import RunSplitter
from ingester.spool import RowSpool
from ingester.validate import FileReport, RunValidator

__all__ = ["FilePass", "read_once"]


@dataclass
class FilePass:
    """What one pass over a file found: the validation report, and each run normalized (or why not).

    A run's rows are in the spool under its uid when it is in `normalized` and rows were built.
    """

    report: FileReport
    normalized: dict[str, NormalizedRun] = field(default_factory=dict)
    failed: dict[str, IngestError] = field(default_factory=dict)


class _RunWork:
    __slots__ = ("normalization", "rows", "failure")

    def __init__(self, path: Path, rows: RowBuilder | None):
        self.normalization = RunNormalization(path)
        self.rows = rows
        self.failure: IngestError | None = None


def read_once(path: Path, spool: RowSpool, *, report: FileReport | None = None, build_rows: bool = True) -> FilePass:
    """Validate (unless `report` is given), normalize and build the rows of every run of `path`."""
    path = Path(path)
    validator = RunValidator(path) if report is None else None
    skip = {run.uid for run in report.runs if run.status == "invalid"} if report is not None else set()
    splitter = RunSplitter()
    works: dict[str, _RunWork] = {}
    run_of_descriptor: dict[str, str] = {}  # what the splitter knows of descriptors, for a quick lookup
    stream = read_documents(path)
    problems: list[Problem] = []
    try:
        for document in stream:
            if validator is not None:
                validator.feed(document)
            name = document.name
            if name == "event" or name == "event_page":
                # An event changes nothing in the splitter: its run is its descriptor's (or the open one).
                ref = document.doc.get("descriptor")
                run = run_of_descriptor.get(ref) if type(ref) is str else None
                if run is None:
                    run = splitter.assign(document)
            else:
                run = splitter.assign(document)
                if name == "descriptor":
                    uid = document.doc.get("uid")
                    if type(uid) is str and run is not None:
                        run_of_descriptor.setdefault(uid, run)
            work = works.get(run) if run is not None else None
            if work is None:
                if run is None or run in skip or name != "start":
                    continue
                work = works[run] = _RunWork(path, _row_builder(spool, run) if build_rows else None)
            if work.failure is not None:
                continue
            if validator is not None:
                state = validator.runs.get(run)  # RunValidator's state of this run (its public `runs`)
                if state is not None and (state.report.problems or state.report.more_problems):
                    _give_up(work, spool, run, None)
                    continue
            try:
                work.normalization.feed(document)
                if work.rows is not None:
                    work.rows.feed(document)
            except Exception as error:  # noqa: BLE001 - the run is refused with the reason
                _give_up(work, spool, run, _failure(work, document, error))
    except IngestError as err:
        problems.append(err.problem)
    except RecursionError:
        problems.append(Problem(str(path), stream.lines_read or None, "document nested too deeply"))

    if report is None:
        report = FileReport(path=path, format=stream.format, truncated=stream.truncated, problems=problems)
        report.runs = validator.finish() if validator is not None else []
        statuses = {run.status for run in report.runs}
        if report.problems or "invalid" in statuses:
            report.status = "invalid"
        elif report.truncated or "incomplete" in statuses:
            report.status = "incomplete"

    result = FilePass(report)
    usable = {run.uid for run in report.runs if run.status != "invalid"} if not report.problems else set()
    for uid, work in works.items():
        if uid not in usable or work.failure is not None:
            spool.discard(uid)
            if work.failure is not None:
                result.failed[uid] = work.failure
            continue
        try:
            result.normalized[uid] = work.normalization.finish()
            if work.rows is not None:
                work.rows.finish()
        except IngestError as err:
            spool.discard(uid)
            result.failed[uid] = err
    return result


def _row_builder(spool: RowSpool, run: str) -> RowBuilder:
    return RowBuilder(lambda stream, block: spool.add(run, stream, block))


def _failure(work: _RunWork, document: Document, error: Exception) -> IngestError:
    if isinstance(error, IngestError):
        return error
    # A document the validator let through but rows cannot be made of.
    uid = document.doc.get("uid")
    reason = f"cannot build the rows: {type(error).__name__}: {error}"
    problem = Problem(str(work.normalization.path), document.line, reason, document.name, uid if isinstance(uid, str) else None)
    return IngestError(problem)


def _give_up(work: _RunWork, spool: RowSpool, run: str, failure: IngestError | None) -> None:
    """Stop working on a run: it failed here, or (failure None) validation found a problem in it."""
    work.failure = failure or IngestError(Problem(str(work.normalization.path), None, "invalid run"))
    work.rows = None
    spool.discard(run)
