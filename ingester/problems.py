"""Errors as values with a place: where in which file, which document, and why.

A `Problem` is raised (inside `IngestError`) where the fault is found and rendered once, at the edge
(CLI line, log line, JSON report). Nothing here prints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["Problem", "IngestError", "WriteFailed", "TargetUnavailable"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One fault in one place: `path:line: <doc name> <uid or -> : reason`."""

    path: str
    line: int | None
    reason: str
    name: str | None = None
    uid: str | None = None

    def __str__(self) -> str:
        line = self.line if self.line is not None else 0
        return f"{self.path}:{line}: {self.name or '-'} {self.uid or '-'} : {self.reason}"

    def to_dict(self) -> dict:
        return asdict(self)


class IngestError(Exception):
    """An exception that carries a `Problem`; its message is the rendered problem."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


class WriteFailed(IngestError):
    """Writing failed on the target's side (Tiled down, a request refused, a file gone mid-write).

    Not the input's fault: the run is `failed`, not `refused`, and is tried again later. The writer
    has removed what it had written.
    """


class TargetUnavailable(Exception):
    """The target (a Tiled server, or the embedded catalog) cannot be opened; the message says which
    one, without any secret, and why, in one line."""
