"""`ingest-dir` and `retry`: the pipeline over many run files, safe to repeat, recorded in the ledger.

For each discovered file: skip it from the ledger alone when its size and mtime (or, failing that,
its content hash) are what the ledger last recorded; otherwise run the pipeline on it, record each
run and the file, and optionally move an ingested file out of the spool. Files are processed by
`jobs` threads; the writes themselves go one at a time to an SQLite-backed target (the embedded
catalog, or a server when `parallel_writes` is off), and two files holding the same run uid never
write it at the same time. What to show is the caller's business (`on_file`).

Several processes (hosts) share the work through claims on the ledger (`ingester.lease`): a file is
claimed before it is hashed or read, and each run uid before it is written; the leases are renewed
while the work goes on and released when it is done. A file another live worker holds is
`claimed-elsewhere` (no outcome recorded). A run another live worker holds is waited for (its
lease is renewed while that worker writes; it expires `lease` seconds after the worker died),
then written by us: the writer finds it complete (already-present) or a crash's leftover (replaced).
Waiting, rather than skipping, is what keeps a run from being reported `ingested` by two workers
and from being lost with a worker that died. `run_batch` comes back to files claimed elsewhere
until their owners are done with them (or their leases expired), so every file it was given ends
with an outcome.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ingester.config import Settings
from ingester.discover import find_run_files
from ingester.move import move_done
from ingester.lease import LeaseKeeper
from ingester.places import path_rules
from ingester.pipeline import (
    ALREADY_PRESENT, DEFERRED, FAILED, INCOMPLETE, REFUSED, WRITTEN, RunOutcome, file_digest, ingest_file,
)  # fmt: skip
from ingester.resolve import PathRules

__all__ = [
    "BatchOptions", "FileOutcome", "Summary", "RunClaimedElsewhere", "run_batch", "path_rules", "readable_roots",
    "ledger_url", "CLAIMED_ELSEWHERE",
]  # fmt: skip

UNCHANGED = "unchanged"
CLAIMED_ELSEWHERE = "claimed-elsewhere"  # another live worker holds the file: not an outcome, not recorded
_WAIT_LEASES = 10  # how many leases to wait for a run (or file) another live worker holds, before giving up
WOULD_INGEST = "valid"  # dry run: would be written
_SEVERITY = {DEFERRED: 6, FAILED: 5, REFUSED: 4, INCOMPLETE: 3, WRITTEN: 2, WOULD_INGEST: 2, ALREADY_PRESENT: 1}


@dataclass
class BatchOptions:
    """How one `ingest-dir` (or `retry`) invocation behaves; flags that are not settings."""

    dry_run: bool = False
    replace: bool = False
    limit: int | None = None
    since: datetime | None = None
    move_done: Path | None = None
    force: bool = False  # look at files even when the ledger says they are unchanged (retry)


@dataclass
class FileOutcome:
    """What happened to one file: its runs' outcomes and the status the ledger records for it."""

    path: Path
    status: str
    runs: list[RunOutcome] = field(default_factory=list)
    reason: str | None = None
    line: int | None = None
    seconds: float = 0.0
    moved_to: Path | None = None

    @property
    def events(self) -> int:
        return sum(run.events for run in self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "status": self.status,
            "runs": [run.uid for run in self.runs if run.uid],
            "reason": self.reason,
            "line": self.line,
            "run_outcomes": [run.to_dict() for run in self.runs],
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
        return 1 if self.counts[REFUSED] or self.counts[FAILED] else 0


def select_files(paths: Iterable[Path], options: BatchOptions) -> Iterator[Path]:
    """Discovered run files, newer than `since` (by mtime), at most `limit` of them."""
    taken = 0
    since = options.since.timestamp() if options.since else None
    for path in find_run_files(paths):
        if options.limit is not None and taken >= options.limit:
            return
        if since is not None:
            try:
                if path.stat().st_mtime < since:
                    continue
            except OSError:
                pass  # reported when it is processed
        taken += 1
        yield path


class RunClaimedElsewhere(RuntimeError):
    """Another live worker kept a run claimed for longer than we wait (the file fails; tried again later)."""


class _Guards:
    """One writer at a time to an SQLite-backed target, and never two writers of one run uid: not
    two threads (an in-process lock per uid), nor two processes (a claim on the ledger, if `keeper`)."""

    def __init__(self, serial_writes: bool, keeper: LeaseKeeper | None = None):
        self._serial = threading.Lock() if serial_writes else None
        self._lock = threading.Lock()
        self._runs: dict[str, threading.Lock] = {}
        self.keeper = keeper

    @contextmanager
    def writing(self, uid: str, path: Path | None = None) -> Iterator[None]:
        with self._lock:
            run_lock = self._runs.setdefault(uid, threading.Lock())
        with run_lock:
            claimed = self._claim_run(uid, path)
            try:
                if self._serial is None:
                    yield
                else:
                    with self._serial:
                        yield
            finally:
                if claimed:
                    self.keeper.release_run(uid)

    def _claim_run(self, uid: str, path: Path | None) -> bool:
        """Claim the run, waiting while another live worker holds it (until it is done, or died and
        its lease expired); give up after `_WAIT_LEASES` leases."""
        if self.keeper is None:
            return False
        deadline = time.monotonic() + _WAIT_LEASES * self.keeper.lease
        pause = min(0.25, self.keeper.lease / 4)
        while not self.keeper.claim_run(uid, path):
            if time.monotonic() > deadline:
                owner = self.keeper.run_owner(uid)
                raise RunClaimedElsewhere(f"run {uid} stayed claimed by {owner} for {_WAIT_LEASES} leases")
            time.sleep(pause)
            pause = min(pause * 2, self.keeper.lease / 3)
        return True


def _file_status(runs: list[RunOutcome]) -> RunOutcome | None:
    """The run whose status speaks for the file: the worst one."""
    return max(runs, key=lambda r: _SEVERITY.get(r.status, 0), default=None)


def process_file(
    path: Path, *, client: Any, ledger: Any, rules: PathRules, settings: Settings, options: BatchOptions, guards: _Guards
) -> FileOutcome:
    """One file, from the ledger's point of view: skip it, or claim it, ingest it and record what happened."""
    started = time.perf_counter()
    try:
        stat = path.stat()
    except OSError as err:
        return _unreadable(path, err, ledger)
    record = ledger.lookup(path)
    if (skipped := _unchanged(path, stat, record, ledger, options)) is not None:
        return skipped
    keeper = guards.keeper
    if keeper is None or options.dry_run:
        return _process(path, stat, record, started, client=client, ledger=ledger, rules=rules, settings=settings,
                        options=options, guards=guards)
    if not keeper.claim_file(path):
        return FileOutcome(path, CLAIMED_ELSEWHERE, reason="another worker is working on it")
    try:
        try:
            stat = path.stat()  # the worker that held it may have moved it, or recorded it meanwhile
        except OSError as err:
            return _unreadable(path, err, ledger)
        record = ledger.lookup(path)
        if (skipped := _unchanged(path, stat, record, ledger, options)) is not None:
            return skipped
        return _process(path, stat, record, started, client=client, ledger=ledger, rules=rules, settings=settings,
                        options=options, guards=guards)
    finally:
        keeper.release_file(path)


def _unreadable(path: Path, err: OSError, ledger: Any) -> FileOutcome:
    """A file that cannot be stat-ed: failed, unless another worker ingested it and moved it away."""
    record = ledger.lookup(path) if isinstance(err, FileNotFoundError) else None
    if record is not None and record.status in (WRITTEN, ALREADY_PRESENT):
        return FileOutcome(path, UNCHANGED, reason=f"moved away after it was {record.status}")
    return FileOutcome(path, FAILED, reason=f"cannot read: {err.strerror}")


def _unchanged(path: Path, stat: os.stat_result, record: Any, ledger: Any, options: BatchOptions) -> FileOutcome | None:
    """The outcome of a file the ledger settled with this size and mtime (`record`: its ledger record,
    read once for this and for `_process`); None if it must be looked at."""
    if options.force or record is None or not record.settles(stat.st_size, stat.st_mtime_ns):
        return None
    if not options.dry_run:
        ledger.touch(path)
    return FileOutcome(path, UNCHANGED, reason=f"unchanged since it was {record.status}")


def _process(
    path: Path, stat: os.stat_result, record: Any, started: float, *, client: Any, ledger: Any, rules: PathRules,
    settings: Settings, options: BatchOptions, guards: _Guards,
) -> FileOutcome:
    digest = file_digest(path)
    if not options.force and record is not None and record.hash == digest and record.status in (WRITTEN, ALREADY_PRESENT):
        if options.dry_run:
            return FileOutcome(path, UNCHANGED, reason=f"same content as when it was {record.status}")
        ledger.record_file(path, size=stat.st_size, mtime_ns=stat.st_mtime_ns, hash=digest, status=record.status,
                           reason=record.reason, line=record.line, runs=record.runs)
        return FileOutcome(path, UNCHANGED, reason=f"same content as when it was {record.status}")
    runs = ingest_file(
        path, client, rules, include_incomplete=settings.include_incomplete, dry_run=options.dry_run,
        replace=options.replace, digest=digest, write_guard=functools.partial(guards.writing, path=path),
    )
    worst = _file_status(runs)
    outcome = FileOutcome(path, worst.status if worst else FAILED, runs, worst.reason if worst else "no run", worst.line if worst else None)
    outcome.seconds = time.perf_counter() - started
    if options.dry_run:
        return outcome
    for run in runs:
        if run.uid and run.status != DEFERRED:
            ledger.record_run(run.uid, path, run.status, reason=run.reason, line=run.line)
    if outcome.status == DEFERRED:  # looked at again by a later pass, which records the file
        return outcome
    ledger.record_file(path, size=stat.st_size, mtime_ns=stat.st_mtime_ns, hash=digest, status=outcome.status,
                       reason=outcome.reason, line=outcome.line, runs=[r.uid for r in runs if r.uid])
    if options.move_done and outcome.status in (WRITTEN, ALREADY_PRESENT):
        outcome.moved_to = move_done(path, options.move_done)
    return outcome


def settled_by_ledger(files: Iterable[Path], ledger: Any, options: BatchOptions) -> tuple[list[FileOutcome], list[Path]]:
    """Split `files` into those the ledger settled with their current size and mtime (outcomes,
    already noted as seen) and those to look at, in one query: when nothing is new, the caller need
    not even open the target."""
    files = list(files)
    if options.force:
        return [], files
    stats = {}
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            continue  # process_file reports it
        stats[path] = (path, stat.st_size, stat.st_mtime_ns)
    settled = ledger.settled(stats.values())
    outcomes, pending = [], []
    for path in files:
        status = settled.get(os.path.abspath(path)) if path in stats else None
        if status is None:
            pending.append(path)
        else:
            outcomes.append(FileOutcome(path, UNCHANGED, reason=f"unchanged since it was {status}"))
    if outcomes and not options.dry_run:
        ledger.touch_all(outcome.path for outcome in outcomes)
    return outcomes, pending


def run_batch(
    files: Iterable[Path],
    settings: Settings,
    options: BatchOptions,
    *,
    client: Any,
    ledger: Any,
    target: str,
    serial_writes: bool,
    on_file: Callable[[FileOutcome], None] = lambda outcome: None,
    settled: Iterable[FileOutcome] = (),
) -> Summary:
    """Process `files` with `settings.jobs` threads (0: one per core); `on_file` sees each outcome.

    `settled` are outcomes found beforehand (`settled_by_ledger`): they go into the summary first.
    Files claimed by other workers are looked at again until those workers are done with them (or
    their leases expired); one still claimed after `_WAIT_LEASES` leases is reported as such.
    """
    rules = path_rules(settings)
    jobs = settings.jobs or os.cpu_count() or 1
    summary = Summary(target=target)
    started = time.perf_counter()
    files = list(files)
    done = 0
    for outcome in settled:
        summary.files.append(outcome)
        on_file(outcome)

    def heartbeat(state: str | None = None) -> None:
        ledger.heartbeat(state or f"ingest-dir: {done} of {len(files)} files done")

    keeper = None if options.dry_run else LeaseKeeper(ledger, settings.lease, heartbeat=heartbeat)
    guards = _Guards(serial_writes, keeper)

    def one(path: Path) -> FileOutcome:
        try:
            return process_file(path, client=client, ledger=ledger, rules=rules, settings=settings,
                                options=options, guards=guards)
        except Exception as err:  # a bug or the ledger's database gone: report the file, go on
            return FileOutcome(path, FAILED, reason=f"{type(err).__name__}: {err}")

    if keeper is not None:
        heartbeat()
    try:
        with (keeper or _no_keeper()), ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="ingest") as pool:
            todo, deadline, pause = files, None, 0.1
            while todo:
                elsewhere = []
                for future in as_completed([pool.submit(one, path) for path in todo]):
                    outcome = future.result()
                    if outcome.status == CLAIMED_ELSEWHERE and (deadline is None or time.monotonic() < deadline):
                        elsewhere.append(outcome.path)
                        continue
                    summary.files.append(outcome)
                    done += 1
                    on_file(outcome)
                if elsewhere and len(elsewhere) < len(todo):
                    deadline, pause = None, 0.1  # others are making progress: keep waiting
                if elsewhere and deadline is None:
                    deadline = time.monotonic() + _WAIT_LEASES * settings.lease
                todo = sorted(elsewhere)
                if todo:
                    time.sleep(pause)
                    pause = min(pause * 2, settings.lease / 3)
    finally:
        if keeper is not None:
            summary.claim_seconds, summary.claim_calls = keeper.seconds, keeper.calls
            _quietly(heartbeat, f"ingest-dir: finished, {done} of {len(files)} files done")
    summary.seconds = time.perf_counter() - started
    return summary


@contextmanager
def _no_keeper() -> Iterator[None]:
    yield


def _quietly(call: Callable[..., Any], *args: Any) -> None:
    try:
        call(*args)
    except Exception:  # a last heartbeat is not worth failing the batch for
        pass
