"""What became of a run and of a file, as the summary, the JSON report, the ledger and the log tell it.

Values only: `RunOutcome` (one run of one file), `FileOutcome` (one file: the status of its worst
run, or a fault of its own), `Summary` (a batch). Nothing here decides an outcome or prints.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingester.problems import Problem
from ingester.status import RETRYABLE, Outcome

__all__ = ["RunOutcome", "FileOutcome", "Summary", "worst", "STAGES"]

STAGES = ("read", "validate", "resolve", "write", "ledger")
"""Where a refusal or a failure was found: reading the file, validating (and normalizing) a run,
resolving and checking its external files, writing it into Tiled, recording it in the ledger."""

# Which run speaks for its file: the worst one.
_SEVERITY = {
    Outcome.INTERRUPTED: 8, Outcome.IN_PROGRESS_ELSEWHERE: 7, Outcome.DEFERRED: 6, Outcome.FAILED: 5, Outcome.REFUSED: 4, Outcome.INCOMPLETE: 3, Outcome.INGESTED: 2,
    Outcome.VALID: 2, Outcome.ALREADY_PRESENT: 1,
}  # fmt: skip


@dataclass
class RunOutcome:
    """The fate of one run of one file."""

    path: Path
    uid: str | None
    status: Outcome
    reason: str | None = None
    line: int | None = None
    problems: list[Problem] = field(default_factory=list)
    events: int = 0
    seconds: float = 0.0
    target_down: bool = False  # failed because the target could not be reached (or its storage broke)
    missing: list[str] = field(default_factory=list)  # "stream/key: path" left out (--on-missing-file skip)
    documents: int = 0  # documents read for this run
    stage: str | None = None  # refused or failed: the stage that found the fault (one of STAGES)
    lag: float | None = None  # ingested: seconds from its stop document's time to readable in Tiled

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "uid": self.uid,
            "status": self.status,
            "reason": self.reason,
            "line": self.line,
            "problems": [str(p) for p in self.problems],
            "events": self.events,
            **({"missing": self.missing} if self.missing else {}),
        }


def worst(runs: list[RunOutcome]) -> RunOutcome | None:
    """The run whose status speaks for the file."""
    return max(runs, key=lambda r: _SEVERITY.get(r.status, 0), default=None)


@dataclass
class FileOutcome:
    """What happened to one file: its runs' outcomes and the status the ledger records for it."""

    path: Path
    status: Outcome
    runs: list[RunOutcome] = field(default_factory=list)
    reason: str | None = None
    line: int | None = None
    seconds: float = 0.0
    moved_to: Path | None = None
    recorded: Outcome | None = None  # unchanged: the status the ledger has for it
    bytes_read: int = 0  # of the file, when it was read
    retry: bool = False  # the ledger had it as failed: this was another try

    @classmethod
    def of_runs(cls, path: Path, runs: list[RunOutcome]) -> FileOutcome:
        """The file's outcome from its runs' (`failed` "no run" if it has none)."""
        run = worst(runs)
        if run is None:
            return cls(path, Outcome.FAILED, runs, "no run")
        return cls(path, run.status, runs, run.reason, run.line)

    @property
    def events(self) -> int:
        return sum(run.events for run in self.runs)

    @property
    def target_down(self) -> bool:
        return any(run.target_down for run in self.runs)

    @property
    def still_wrong(self) -> bool:
        """Refused or failed now, or unchanged since it was."""
        return self.status in RETRYABLE or (self.status == Outcome.UNCHANGED and self.recorded in RETRYABLE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "status": self.status,
            "runs": [run.uid for run in self.runs if run.uid],
            "reason": self.reason,
            "line": self.line,
            "run_outcomes": [run.to_dict() for run in self.runs],
            **({"missing": missing} if (missing := [m for run in self.runs for m in run.missing]) else {}),
            **({"moved_to": str(self.moved_to)} if self.moved_to else {}),
        }


@dataclass
class Summary:
    """Every file's outcome, in the order they finished, and counts by status."""

    files: list[FileOutcome] = field(default_factory=list)
    target: str = ""
    seconds: float = 0.0
    claim_seconds: float = 0.0  # spent in the ledger's claim, renew and release calls
    claim_calls: int = 0
    signal: int | None = None  # the signal that stopped the pass, if one did
    target_down: str | None = None  # why the pass stopped because the target went away, if it did

    @property
    def runs(self) -> list[RunOutcome]:
        return [run for f in self.files for run in f.runs]

    @property
    def counts(self) -> Counter:
        return Counter(f.status for f in self.files)

    @property
    def run_counts(self) -> Counter:
        return Counter(run.status for run in self.runs)

    @property
    def exit_code(self) -> int:
        """128 + the signal that stopped the pass; 2 when the target went away; 1 while a file it
        covers is refused or failed (now, or unchanged since); else 0."""
        if self.signal is not None:
            return 128 + self.signal
        if self.target_down is not None:
            return 2
        return 1 if any(f.still_wrong for f in self.files) else 0

    def merge(self, other: Summary, *, at: int) -> None:
        """Add `other`'s files (inserted at position `at`) and its time and claim counts."""
        self.files[at:at] = other.files
        self.claim_seconds += other.claim_seconds
        self.claim_calls += other.claim_calls
        self.seconds += other.seconds
        self.signal = self.signal or other.signal
        self.target_down = self.target_down or other.target_down
