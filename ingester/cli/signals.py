"""SIGINT/SIGTERM for long-running commands: set a stop event instead of dying mid-run."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

from ingester.logs import logger

__all__ = ["install_signal_handlers"]


def install_signal_handlers(stop: threading.Event) -> Callable[[], None]:
    """Make SIGINT and SIGTERM set `stop` (call from the main thread); returns a function restoring the old handlers."""

    def handle(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            logger.warning("{} again: still finishing the file in hand", name)
        else:
            logger.info("{}: stopping after the file in hand", name)
        stop.set()

    previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore
