"""Settling: which watched run files are ready to be handed over, and when to try failed ones again.

A `SettleTable` is the watcher's memory, keyed by path. Files it has heard of (an event, a scan)
are *pending* until they are ready: unchanged in size and mtime_ns (re-checked with `os.stat`,
since events on network filesystems are late or missing) for `settle` seconds (counted from the
last event, or from the look that found a change no event told of), and ending with a
stop document (`ingester.watch.tail`) or gzip-compressed. A pending file without a stop document stays
pending, its tail not read again until it changes; once it has been quiet for `incomplete_after`
seconds it is handed over anyway, once, marked incomplete. A handed-over file is *in hand* until
its verdict comes back (`finished`): any status but `failed` marks it done with the snapshot it
was handed over with, so it is handed over again only after it changes; `failed` schedules a retry
after `retry_base` seconds, doubling up to `retry_max` while the file stays the same. A file that
changes leaves its backoff behind and goes through settling again.

This module keeps state and reads only stat results and file tails; it never calls the callback,
never starts a thread and never looks at the clock except through the `clock` it is given.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG

from ingester.status import Outcome
from ingester.watch.tail import Ending, file_ending

__all__ = [
    "Snapshot", "take_snapshot", "Handover", "SettleTable", "COMPLETE", "COMPRESSED", "INCOMPLETE", "RETRY",
]  # fmt: skip

COMPLETE = "complete"
COMPRESSED = "compressed"
INCOMPLETE = "incomplete"
RETRY = "retry"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What `os.stat` says of a file, as far as telling a change goes."""

    size: int
    mtime_ns: int


def take_snapshot(path: str | os.PathLike[str]) -> Snapshot | None:
    """The file's size and mtime, or None when it is gone (or not a file)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return Snapshot(stat.st_size, stat.st_mtime_ns) if S_ISREG(stat.st_mode) else None


@dataclass(frozen=True, slots=True)
class Handover:
    """A file to hand to the callback now, as it was when judged ready, and why it is ready."""

    path: Path
    snapshot: Snapshot
    why: str  # COMPLETE, COMPRESSED, INCOMPLETE (no stop, quiet for too long) or RETRY


@dataclass(slots=True)
class _Pending:
    snapshot: Snapshot | None  # None: heard of, not yet looked at
    since: float  # when it was last seen to change
    heard: bool = False  # an event set `since` since the last look: a change then seen dates from it
    ending: Ending | None = None
    ending_of: Snapshot | None = None  # the snapshot whose tail gave `ending`


@dataclass(slots=True)
class _Retry:
    snapshot: Snapshot
    delay: float
    due: float


@dataclass(frozen=True, slots=True)
class _Done:
    snapshot: Snapshot
    status: str
    at: float


class SettleTable:
    """Pending, in-hand, retrying and done files. Safe to share between threads."""

    def __init__(
        self,
        *,
        settle: float = 2.0,
        incomplete_after: float = 86400.0,
        retry_base: float = 30.0,
        retry_max: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        stat: Callable[[Path], Snapshot | None] = take_snapshot,
        ending: Callable[[Path], Ending] = file_ending,
    ):
        self.settle = settle
        self.incomplete_after = incomplete_after
        self.retry_base = retry_base
        self.retry_max = retry_max
        self._clock = clock
        self._stat = stat
        self._ending = ending
        self._lock = threading.Lock()
        self._pending: dict[Path, _Pending] = {}
        self._in_hand: dict[Path, Snapshot] = {}
        self._retry: dict[Path, _Retry] = {}
        self._done: dict[Path, _Done] = {}

    # --- what is heard -----------------------------------------------------------------------

    def note(self, path: Path) -> None:
        """An event says `path` was created or written: look at it again, from now."""
        with self._lock:
            entry = self._pending.get(path)
            if entry is None:
                self._pending[path] = _Pending(None, self._clock(), heard=True)
            else:
                entry.since, entry.heard = self._clock(), True

    def reconsider(self, path: Path) -> None:
        """Something the file is read with changed (its pack's catalog.yml), not the file: hand it
        over again once settled, even when it is done with as it is."""
        with self._lock:
            self._done.pop(path, None)
        self.note(path)

    def offer(self, path: Path, snapshot: Snapshot) -> bool:
        """A scan found `path` as `snapshot`: pending unless known as such; whether it became pending."""
        with self._lock:
            if path in self._pending or path in self._in_hand:
                return False
            for known in (self._done.get(path), self._retry.get(path)):
                if known is not None and known.snapshot == snapshot:
                    return False
            self._pending[path] = _Pending(snapshot, self._clock())
            return True

    def forget(self, path: Path) -> None:
        """`path` was deleted or moved away."""
        with self._lock:
            for table in (self._pending, self._retry, self._done):
                table.pop(path, None)

    def withdraw(self, path: Path) -> None:
        """An in-hand file vanished before the callback got to it: forget it altogether."""
        with self._lock:
            for table in (self._in_hand, self._pending, self._retry, self._done):
                table.pop(path, None)

    def forget_under(self, folder: Path) -> None:
        """A folder was deleted or moved away: forget everything below it."""
        with self._lock:
            for table in (self._pending, self._retry, self._done):
                for path in [p for p in table if p.is_relative_to(folder)]:
                    del table[path]

    def retain(self, seen: Iterable[Path], since: float) -> None:
        """After a full scan that began at `since`: forget done and retrying files it did not see."""
        seen = set(seen)
        with self._lock:
            for path in [p for p, d in self._done.items() if p not in seen and d.at < since]:
                del self._done[path]
            for path in [p for p in self._retry if p not in seen and p not in self._in_hand]:
                del self._retry[path]

    # --- what is handed over -----------------------------------------------------------------

    def due(self) -> list[Handover]:
        """Files ready now; each is in hand from here until `finished` is called for it."""
        now = self._clock()
        return self._due_retries(now) + [h for p in self._pending_paths() if (h := self._settled(p, now))]

    def finished(self, path: Path, status: str) -> float | None:
        """The callback's verdict on an in-hand file; the retry delay when it failed."""
        with self._lock:
            snapshot = self._in_hand.pop(path, None)
            if snapshot is None:
                return None
            now = self._clock()
            if status != Outcome.FAILED:
                self._retry.pop(path, None)
                self._done[path] = _Done(snapshot, status, now)
                return None
            self._done.pop(path, None)
            previous = self._retry.get(path)
            if previous is not None and previous.snapshot == snapshot:
                delay = min(previous.delay * 2, self.retry_max)
            else:
                delay = min(self.retry_base, self.retry_max)
            self._retry[path] = _Retry(snapshot, delay, now + delay)
            return delay

    def counts(self) -> dict[str, int]:
        """How many files are pending (`without_stop` of them seen to lack a stop), in hand, retrying, done."""
        with self._lock:
            return {
                "pending": len(self._pending),
                "without_stop": sum(e.ending is Ending.OPEN for e in self._pending.values()),
                "in_hand": len(self._in_hand),
                "retrying": len(self._retry),
                "done": len(self._done),
            }

    # --- plumbing ----------------------------------------------------------------------------

    def _pending_paths(self) -> list[Path]:
        with self._lock:
            return [p for p in self._pending if p not in self._in_hand]

    def _settled(self, path: Path, now: float) -> Handover | None:
        """Look at one pending file (stat outside the lock), and hand it over if it is ready."""
        snapshot = self._stat(path)
        with self._lock:
            entry = self._pending.get(path)
            if entry is None or path in self._in_hand:
                return None
            if snapshot is None:
                del self._pending[path]  # gone; an event or a scan brings it back
                return None
            if snapshot != entry.snapshot:
                # The quiet period runs from the change: the event's time when an event told of it
                # (a look up to one tick later must not add that tick), else from this look.
                entry.snapshot = snapshot
                if not entry.heard:
                    entry.since = now
            entry.heard = False
            if now - entry.since < self.settle:
                return None
            if self._known_as(path, snapshot):
                del self._pending[path]
                return None
            ending = entry.ending if entry.ending_of == snapshot else None
        if ending is None:
            ending = self._ending(path)  # reads the tail: once per snapshot
        with self._lock:
            entry = self._pending.get(path)
            if entry is None or entry.snapshot != snapshot or path in self._in_hand:
                return None
            entry.ending, entry.ending_of = ending, snapshot
            if ending is Ending.OPEN:
                if now - entry.since < self.incomplete_after:
                    return None
                why = INCOMPLETE
            else:
                why = COMPLETE if ending is Ending.STOP else COMPRESSED
            del self._pending[path]
            self._in_hand[path] = snapshot
            return Handover(path, snapshot, why)

    def _known_as(self, path: Path, snapshot: Snapshot) -> bool:
        """Done with this snapshot, or waiting to retry it; a change drops the backoff (lock held)."""
        done = self._done.get(path)
        if done is not None and done.snapshot == snapshot:
            return True
        retry = self._retry.get(path)
        if retry is not None:
            if retry.snapshot == snapshot:
                return True
            del self._retry[path]
        return False

    def _due_retries(self, now: float) -> list[Handover]:
        with self._lock:
            due = [(p, r) for p, r in self._retry.items() if r.due <= now and p not in self._in_hand]
        ready = []
        for path, retry in due:
            snapshot = self._stat(path)
            with self._lock:
                if self._retry.get(path) is not retry or path in self._in_hand:
                    continue
                if snapshot is None:
                    del self._retry[path]
                elif snapshot != retry.snapshot:
                    del self._retry[path]  # changed: settle it again, no backoff
                    self._pending.setdefault(path, _Pending(snapshot, now))
                else:
                    retry.due = math.inf  # until its verdict comes back
                    self._pending.pop(path, None)
                    self._in_hand[path] = snapshot
                    ready.append(Handover(path, snapshot, RETRY))
        return ready
