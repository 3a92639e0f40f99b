"""What validation found: per run and per file, as values the CLI, the pipeline and reports render."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingester.problems import Problem
from ingester.status import Verdict

__all__ = ["RunReport", "FileReport"]


@dataclass
class RunReport:
    """What validation found about one run of a file."""

    uid: str | None
    line: int
    status: str = Verdict.INCOMPLETE
    problems: list[Problem] = field(default_factory=list)
    streams: dict[str, int] = field(default_factory=dict)  # events per stream
    documents: int = 0
    more_problems: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "line": self.line,
            "status": self.status,
            "streams": self.streams,
            "documents": self.documents,
            "problems": [p.to_dict() for p in self.problems],
            "more_problems": self.more_problems,
        }


@dataclass
class FileReport:
    """What validation found about one file: its runs and the faults that belong to no run."""

    path: Path
    format: str | None = None
    status: str = Verdict.OK
    runs: list[RunReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    truncated: Problem | None = None

    def conclude(self) -> None:
        """Set the file's verdict from its own faults and its runs': the worst of them."""
        verdicts = {run.status for run in self.runs}
        if self.problems or Verdict.INVALID in verdicts:
            self.status = Verdict.INVALID
        elif self.truncated or Verdict.INCOMPLETE in verdicts:
            self.status = Verdict.INCOMPLETE
        else:
            self.status = Verdict.OK

    def all_problems(self) -> list[Problem]:
        found = list(self.problems)
        for run in self.runs:
            found.extend(run.problems)
        return sorted(found, key=lambda p: p.line or 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "status": self.status,
            "runs": [r.to_dict() for r in self.runs],
            "problems": [p.to_dict() for p in self.problems],
            "truncated": self.truncated.to_dict() if self.truncated else None,
        }
