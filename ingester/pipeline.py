"""The pipeline that joins the stages for one run file: read → validate → normalize → resolve → write.

Short on purpose: every decision lives in its stage. A run is written only when the whole file
has been read and the run is complete and valid, and only after every external file it names has
been found inside the allowed roots — so a refused run leaves nothing in Tiled. The file is read
again for the event rows (streamed, bounded memory). Nothing here parses arguments or prints.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingester import __version__
from ingester.normalize import iter_row_batches, normalize_run
from ingester.problems import IngestError, Problem
from ingester.reader import read_documents
from ingester.resolve import PathRules, resolve_external_paths
from ingester.split import documents_of_run
from ingester.validate import FileReport, RunReport, validate_file

__all__ = ["RunOutcome", "ingest_file", "file_digest", "rules_for"]

# What happened to a run (or to a file that holds no readable run).
WRITTEN, ALREADY_PRESENT, INCOMPLETE, REFUSED, FAILED = "ingested", "already-present", "incomplete", "refused", "failed"


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
) -> list[RunOutcome]:
    """Validate, normalize, resolve and write every run of one file; one outcome per run."""
    from ingester.writer import RunAlreadyPresent, write_run

    report = report or validate_file(path)
    if report.problems:  # the file itself cannot be read through: refuse all of it
        return [_refused(path, run, report.problems) for run in report.runs if run.uid] or [
            _refused(path, None, report.problems)
        ]
    outcomes = []
    digest = None
    for run in report.runs:
        if run.status == "invalid":
            outcomes.append(_refused(path, run, run.problems))
            continue
        if run.status == "incomplete" and not include_incomplete:
            reason = report.truncated.reason if report.truncated else "run has no stop document"
            outcomes.append(RunOutcome(path, run.uid, INCOMPLETE, reason, run.line, events=sum(run.streams.values())))
            continue
        started = time.perf_counter()
        try:
            normalized = normalize_run(_run_documents(path, run.uid), path)
            resolved = resolve_external_paths(normalized, rules_for(path, rules))
            if dry_run:
                outcomes.append(RunOutcome(path, run.uid, "valid", events=sum(run.streams.values())))
                continue
            digest = digest or file_digest(path)
            provenance = {
                "source": {"path": str(path.absolute()), "hash": digest, "size": path.stat().st_size,
                           "format": report.format, "line": run.line},
                "ingester": {"name": "bluesky-ingester", "version": __version__},
                "incomplete": run.status == "incomplete",
            }
            rows = iter_row_batches(_run_documents(path, run.uid), resolved)
            write_run(client, resolved, rows, provenance=provenance)
        except IngestError as err:
            outcomes.append(_refused(path, run, [err.problem]))
            continue
        except RunAlreadyPresent:
            outcomes.append(RunOutcome(path, run.uid, ALREADY_PRESENT, "run is already in the catalog", run.line))
            continue
        except Exception as err:  # Tiled down, a file vanished mid-write...: the writer cleaned up
            problem = Problem(str(path), run.line, f"write failed: {type(err).__name__}: {err}", "start", run.uid)
            outcomes.append(_refused(path, run, [problem], status=FAILED))
            continue
        outcomes.append(
            RunOutcome(path, run.uid, WRITTEN, events=sum(run.streams.values()), seconds=time.perf_counter() - started)
        )
    return outcomes


def _run_documents(path: Path, uid: str | None) -> Iterator:
    return documents_of_run(read_documents(path), uid)
