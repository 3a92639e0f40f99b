"""What the ledger stores about a file, a run and a worker: the records read back.

Plain values, no database access: `ingester.ledger.store` reads and writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ingester.status import RECORDED

__all__ = ["CLAIMED", "FileRecord", "RunRecord", "WorkerRecord"]


CLAIMED = "claimed"
"""Status of a row placed by a claim before any outcome was recorded (a crashed worker leaves it)."""


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One run file of one target, as the ledger last saw it."""

    target: str
    path: str
    size: int | None
    mtime_ns: int | None
    hash: str | None
    status: str
    reason: str | None
    line: int | None
    runs: tuple[str, ...]
    attempts: int
    first_seen: datetime
    last_seen: datetime
    last_attempt: datetime | None
    owner: str | None
    lease_until: datetime | None

    def settles(self, size: int, mtime_ns: int) -> bool:
        """Whether this record settled the file as it is now (same size and mtime)."""
        return self.size == size and self.mtime_ns == mtime_ns and self.status in RECORDED


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run uid of one target: where it was last read from and what became of it."""

    target: str
    uid: str
    path: str | None
    status: str
    reason: str | None
    line: int | None
    attempts: int
    updated: datetime
    owner: str | None
    lease_until: datetime | None


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """One worker process and the last sign of life it gave."""

    worker_id: str
    target: str
    host: str
    pid: int
    command: str | None
    started: datetime
    heartbeat: datetime
    last_scan: datetime | None
    state: str
