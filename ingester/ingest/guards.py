"""Who may write a run now: one writer at a time to an SQLite-backed target, one writer of a run uid.

Not two threads (an in-process lock per uid), nor two processes or hosts (a claim on the ledger,
through the `LeaseKeeper`, when there is one). A run another live worker holds is waited for: its
lease is renewed while that worker writes and expires once it died; after `WAIT_LEASES` leases the
wait is given up (`RunClaimedElsewhere`). Waiting, rather than skipping, is what keeps a run from
being reported `ingested` by two workers and from being lost with a worker that died.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ingester.ledger.lease import LeaseKeeper

__all__ = ["WAIT_LEASES", "RunClaimedElsewhere", "WriteGuards"]

WAIT_LEASES = 10  # how many leases to wait for a run (or file) another live worker holds, before giving up


class RunClaimedElsewhere(RuntimeError):
    """Another live worker kept a run claimed for longer than we wait (the file fails; tried again later)."""


class WriteGuards:
    """Held around the writing of each run (`writing(uid)`); see the module's docstring."""

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
        its lease expired); give up after `WAIT_LEASES` leases."""
        if self.keeper is None:
            return False
        deadline = time.monotonic() + WAIT_LEASES * self.keeper.lease
        pause = min(0.25, self.keeper.lease / 4)
        while not self.keeper.claim_run(uid, path):
            if time.monotonic() > deadline:
                owner = self.keeper.run_owner(uid)
                raise RunClaimedElsewhere(f"run {uid} stayed claimed by {owner} for {WAIT_LEASES} leases")
            time.sleep(pause)
            pause = min(pause * 2, self.keeper.lease / 3)
        return True
