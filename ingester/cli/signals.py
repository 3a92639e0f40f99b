"""SIGINT and SIGTERM for long-running commands: stop cleanly instead of dying mid-run.

The first signal sets the command's stop event: it takes no new work, finishes the run in hand
(a run is never left half-written) and exits with 128 + the signal's number (`ingest-dir`, `retry`)
or 0 (`watch`). With `abort_on_second`, a second signal ends the process at once: any helper
processes are killed first, and a run being written is left marked "writing" (never complete), for
the next pass to replace.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading

from ingester.logs import logger

__all__ = ["Signals", "install_signal_handlers"]


class Signals:
    """The handlers installed by `install_signal_handlers`: `received` is the first signal's number."""

    def __init__(self, stop: threading.Event, abort_on_second: bool):
        self.stop = stop
        self.abort_on_second = abort_on_second
        self.received: int | None = None
        self._previous = {signum: signal.signal(signum, self._handle) for signum in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if self.received is None:
            self.received = signum
            again = " (again to abort at once)" if self.abort_on_second else ""
            logger.warning("{}: finishing the run in hand, then stopping{}", name, again)
            self.stop.set()
        elif self.abort_on_second:
            _abort(name, signum)
        else:
            logger.warning("{} again: still finishing the file in hand", name)

    def restore(self) -> None:
        """Put the handlers back as they were."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def install_signal_handlers(stop: threading.Event, *, abort_on_second: bool = False) -> Signals:
    """Make SIGINT and SIGTERM set `stop` (call from the main thread); see the module's docstring."""
    return Signals(stop, abort_on_second)


def _abort(name: str, signum: int) -> None:
    for child in multiprocessing.active_children():  # writer processes ignore the signals themselves
        child.kill()
    sys.stderr.write(
        f"\n{name} again: aborted; a run being written stays marked 'writing' and the next pass replaces it\n"
    )
    sys.stderr.flush()
    os._exit(128 + signum)
