"""One run file from the ledger's point of view: skip it, or claim it, ingest it and record what happened.

A `FileIngester` carries what every file of a batch (or of a watcher) shares: the target's client,
the ledger, the path rules, the options, the lease keeper and the write guards. `ingest-dir`,
`retry`, each writer process and `watch` build one and call `process(path)` for each file.

A file is skipped from the ledger alone when its size and mtime (or, failing that, its content
hash) are what the ledger last recorded. Otherwise it is claimed before it is hashed or read (a
file another live worker holds is `claimed-elsewhere`, nothing recorded), its runs are ingested
(`RunIngester`), each run and the file are recorded, and an ingested file is moved out of the
spool if asked. A run another live worker holds is waited for (`WriteGuards`).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ingester.config import Settings, path_rules
from ingester.ingest.guards import WriteGuards
from ingester.ingest.move import move_done
from ingester.ingest.outcomes import FileOutcome
from ingester.ingest.packs import pack_changed_since
from ingester.ingest.pipeline import RunIngester, RunPolicy, file_digest
from ingester.ledger.lease import LeaseKeeper
from ingester.ledger.records import FileRecord
from ingester.ledger.store import Ledger
from ingester.read.source import Source
from ingester.status import RECORDED, SUCCEEDED, Outcome

__all__ = ["BatchOptions", "FileIngester"]


@dataclass
class BatchOptions:
    """How one `ingest-dir` (or `retry`) invocation behaves; flags that are not settings."""

    dry_run: bool = False
    replace: bool = False
    limit: int | None = None
    since: datetime | None = None
    move_done: Path | None = None
    force: bool = False  # look at files even when the ledger says they are unchanged (retry)


class FileIngester:
    """What every file of a batch shares, and `process(path)` for each file.

    Use as a context manager: the lease keeper renews this worker's claims (and, with `heartbeat`,
    says it is alive and what it is doing: `state`) in a thread of its own until the block ends.
    `defer_existing`: see `RunIngester` (one of several writer processes). `retry_failed`: a file the
    ledger has as failed is looked at again even when unchanged (the watcher's retries). `stop`: once
    set, no file is begun and no further run of the file in hand (`interrupted`, nothing recorded).
    """

    def __init__(
        self, client: Any, ledger: Ledger, settings: Settings, options: BatchOptions, *,
        defer_existing: bool = False, heartbeat: bool = True, retry_failed: bool = False, stop: Any = None,
    ):  # fmt: skip
        self.ledger = ledger
        self.stop = stop if stop is not None else threading.Event()
        self.retry_failed = retry_failed
        self.settings = settings
        self.options = options
        self.state = "starting"
        beat = self._heartbeat if heartbeat else None
        self.keeper = None if options.dry_run else LeaseKeeper(ledger, settings.lease, heartbeat=beat)
        self.guards = WriteGuards(not settings.parallel_writes, self.keeper)
        policy = RunPolicy(
            include_incomplete=settings.include_incomplete, dry_run=options.dry_run, replace=options.replace,
            defer_existing=defer_existing, leftover_after=settings.leftover_after,
        )  # fmt: skip
        self.runs = RunIngester(client, path_rules(settings), policy, guards=self.guards, stop=self.stop)

    def __enter__(self) -> FileIngester:
        if self.keeper is not None:
            self.keeper.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.keeper is not None:
            self.keeper.close()

    def _heartbeat(self) -> None:
        self.ledger.heartbeat(self.state)

    def process(self, path: Path) -> FileOutcome:
        """One file: skip it, or claim it, ingest it and record what happened."""
        if self.stop.is_set():
            return FileOutcome(path, Outcome.INTERRUPTED, reason="not looked at: the pass was stopped first")
        started = time.perf_counter()
        seen = self._seen(path)
        if isinstance(seen, FileOutcome) or self.keeper is None:
            return seen if isinstance(seen, FileOutcome) else self._ingest(path, *seen, started)
        if not self.keeper.claim_file(path):
            return FileOutcome(path, Outcome.CLAIMED_ELSEWHERE, reason="another worker is working on it")
        try:
            seen = self._seen(path)  # the worker that held it may have moved it, or recorded it meanwhile
            return seen if isinstance(seen, FileOutcome) else self._ingest(path, *seen, started)
        finally:
            self.keeper.release_file(path)

    def _seen(self, path: Path) -> FileOutcome | tuple[os.stat_result, FileRecord | None]:
        """The outcome of a file the ledger settled with this size and mtime; else its stat and record."""
        try:
            stat = path.stat()
        except OSError as err:
            return self._unreadable(path, err)
        record = self.ledger.lookup(path)
        if self.options.force or record is None or not record.settles(stat.st_size, stat.st_mtime_ns):
            return stat, record
        if self.retry_failed and record.status == Outcome.FAILED:
            return stat, record
        if record.status == Outcome.REFUSED and pack_changed_since(path, record.last_attempt):
            return stat, record  # refused before its pack's catalog.yml came, or under an older one
        if not self.options.dry_run:
            self.ledger.touch(path)
        return FileOutcome(
            path, Outcome.UNCHANGED, reason=f"unchanged since it was {record.status}", recorded=Outcome(record.status)
        )

    def _ingest(self, path: Path, stat: os.stat_result, record: FileRecord | None, started: float) -> FileOutcome:
        if not self.options.force and record is not None and record.hash and record.status in SUCCEEDED:
            digest = file_digest(path)  # touched, not changed? Then nothing needs writing.
            if digest == record.hash:
                if not self.options.dry_run:
                    self.ledger.record_file(
                        path, size=stat.st_size, mtime_ns=stat.st_mtime_ns, hash=digest, status=record.status,
                        reason=record.reason, line=record.line, runs=record.runs,
                    )  # fmt: skip
                return FileOutcome(path, Outcome.UNCHANGED, reason=f"same content as when it was {record.status}")
        result = self.runs.ingest(path)
        outcome = FileOutcome.of_runs(path, result.runs)
        outcome.seconds = time.perf_counter() - started
        outcome.bytes_read = result.source.size if result.source is not None else 0
        outcome.retry = record is not None and record.status == Outcome.FAILED
        if not self.options.dry_run:
            self._record(path, stat, result.source, outcome)
        return outcome

    def _record(self, path: Path, stat: os.stat_result, source: Source | None, outcome: FileOutcome) -> None:
        """Each run's outcome, and the file's with what was read of it: its size, hash and (unless it
        changed while it was read, which makes the next pass look again) its mtime."""
        for run in outcome.runs:
            if run.uid and run.status in RECORDED:
                self.ledger.record_run(run.uid, path, run.status, reason=run.reason, line=run.line)
        if outcome.status not in RECORDED:  # deferred, interrupted, in progress elsewhere: a later pass looks again
            return
        size, mtime_ns, digest = stat.st_size, stat.st_mtime_ns, None
        if source is not None:
            size, mtime_ns, digest = source.size, source.mtime_ns if source.mtime_ns is not None else -1, source.digest
        self.ledger.record_file(
            path, size=size, mtime_ns=mtime_ns, hash=digest, status=outcome.status, reason=outcome.reason,
            line=outcome.line, runs=[r.uid for r in outcome.runs if r.uid],
        )  # fmt: skip
        if self.options.move_done and outcome.status in SUCCEEDED:
            outcome.moved_to = move_done(path, self.options.move_done)

    def _unreadable(self, path: Path, err: OSError) -> FileOutcome:
        """A file that cannot be stat-ed: failed, unless another worker ingested it and moved it away."""
        record = self.ledger.lookup(path) if isinstance(err, FileNotFoundError) else None
        if record is not None and record.status in SUCCEEDED:
            return FileOutcome(path, Outcome.UNCHANGED, reason=f"moved away after it was {record.status}")
        return FileOutcome(path, Outcome.FAILED, reason=f"cannot read: {err.strerror}")
