"""Claims held while working: take a lease on a file or a run, keep it alive, give it back.

A `LeaseKeeper` is one worker process's hand on the ledger's claims (`Ledger.claim_file`,
`claim_run`, ...). It remembers what this process holds and, from one background thread, renews
every held lease a third of the way through it, so a claim outlives any write of a live worker
but expires `lease` seconds after the worker died (kill -9, a host gone): another worker may then
take the file or run over, or at once when that worker was a process of this host that is gone.
The same thread gives the ledger this worker's heartbeat, when asked.

It measures what claiming costs (`seconds`: wall time spent in claim, renew and release calls,
summed over threads) and counts the calls. It never decides what to do with a claim refused: the
caller (`ingester.ingest.batch`) does.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ingester.logs import logger

__all__ = ["LeaseKeeper", "dead_owner"]


def dead_owner(owner: str | None) -> str | None:
    """`owner` (a worker id, `host:pid`) when it is a process of this host that is not running any
    more: its claims need not wait for their leases to expire. None otherwise (another host, alive,
    or not a `host:pid` id)."""
    if not owner:
        return None
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return owner
    except OSError:  # EPERM: it runs, under another user
        return None
    return None


class LeaseKeeper:
    """Claims of one worker on one ledger, renewed every `lease / 3` seconds while held.

    `heartbeat()`, if given, is called at every renewal round (e.g. `ledger.heartbeat(state)`).
    Safe to share between threads; use as a context manager (or `start` / `close`).
    """

    def __init__(self, ledger: Any, lease: float, *, heartbeat: Callable[[], None] | None = None):
        if lease <= 0:
            raise ValueError(f"a lease must last a positive time, not {lease} s")
        self.ledger = ledger
        self.lease = lease
        self.interval = lease / 3
        self.seconds = 0.0  # spent in claim / renew / release calls
        self.calls = 0
        self.lost = 0  # leases found taken over when renewing (the worker stalled longer than a lease)
        self._heartbeat = heartbeat
        self._lock = threading.Lock()
        self._files: dict[str, int] = {}  # held path -> how many holders in this process
        self._runs: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- claims ------------------------------------------------------------------------------

    def claim_file(self, path: Path | str) -> bool:
        """Take the lease on a file; false if another worker (or another thread of ours) holds it."""
        key = os.path.abspath(path)
        with self._lock:
            if key in self._files:  # the ledger would say yes: the lease is this worker's already
                return False
            self._files[key] = 1
        taken = False
        try:
            with self._timed():
                taken = self.ledger.claim_file(key, self.lease)
                if not taken and (dead := dead_owner(self._file_owner(key))) is not None:
                    logger.info("taking over {} from {}, which is no longer running", key, dead)
                    taken = self.ledger.claim_file(key, self.lease, taking_over=dead)
        finally:
            if not taken:
                with self._lock:
                    self._files.pop(key, None)
        return taken

    def release_file(self, path: Path | str) -> None:
        key = os.path.abspath(path)
        if self._drop(self._files, key):
            with self._timed():
                self.ledger.release(key)

    def claim_run(self, uid: str, path: Path | str | None = None) -> bool:
        """Take the lease on a run uid; false if another worker holds a live one."""
        with self._timed():
            taken = self.ledger.claim_run(uid, self.lease, path=path)
            if not taken and (dead := dead_owner(self.run_owner(uid))) is not None:
                logger.info("taking over run {} from {}, which is no longer running", uid, dead)
                taken = self.ledger.claim_run(uid, self.lease, path=path, taking_over=dead)
        if taken:
            self._hold(self._runs, uid)
        return taken

    def release_run(self, uid: str) -> None:
        if self._drop(self._runs, uid):
            with self._timed():
                self.ledger.release_run(uid)

    def _file_owner(self, key: str) -> str | None:
        record = self.ledger.lookup(key)
        return None if record is None else record.owner

    def run_owner(self, uid: str) -> str | None:
        """Who holds the lease on a run now, if anyone (a live lease or not)."""
        record = self.ledger.lookup_run(uid)
        return None if record is None else record.owner

    # --- keeping leases alive ----------------------------------------------------------------

    def start(self) -> LeaseKeeper:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="ingester-leases", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> LeaseKeeper:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def renew_all(self) -> None:
        """Renew every held lease now (the background thread does this every `interval` seconds)."""
        with self._lock:
            files, runs = list(self._files), list(self._runs)
        for key in files:
            self._renew(self.ledger.renew, key, "file")
        for uid in runs:
            self._renew(self.ledger.renew_run, uid, "run")

    def _renew(self, renew: Callable[[str, float], bool], key: str, kind: str) -> None:
        with self._timed():
            kept = renew(key, self.lease)
        if not kept and self._still_held(key):
            self.lost += 1
            logger.warning("lost the lease on {} {} (another worker took it over after it expired)", kind, key)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.renew_all()
                if self._heartbeat is not None:
                    self._heartbeat()
            except Exception as err:  # the ledger's database away for a moment: try again next round
                logger.warning("renewing leases failed: {}: {}", type(err).__name__, err)

    # --- plumbing ----------------------------------------------------------------------------

    def _hold(self, table: dict[str, int], key: str) -> None:
        with self._lock:
            table[key] = table.get(key, 0) + 1

    def _drop(self, table: dict[str, int], key: str) -> bool:
        """Forget one holder of `key`; true when it was the last one (time to release)."""
        with self._lock:
            count = table.get(key, 0)
            if count <= 1:
                table.pop(key, None)
                return count == 1
            table[key] = count - 1
            return False

    def _still_held(self, key: str) -> bool:
        with self._lock:
            return key in self._files or key in self._runs

    @contextmanager
    def _timed(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            took = time.perf_counter() - started
            with self._lock:
                self.seconds += took
                self.calls += 1
