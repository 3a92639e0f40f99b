"""watchdog's observers for the spool folders, and what their events mean to the watcher.

A folder on a local disk gets the native (inotify) observer; one on a network filesystem, or where
inotify runs out of watches, the polling observer. Every event only tells the watcher a path to
look at (`note`), a path or folder that is gone (`forget`), or a folder to scan.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from ingester.logs import logger

__all__ = ["EVENTS", "SpoolEvents", "start_observers"]

EVENTS = [
    FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileMovedEvent, FileDeletedEvent,
    DirCreatedEvent, DirMovedEvent, DirDeletedEvent,
]  # fmt: skip


def start_observers(
    roots: list[Path], polled: dict[Path, bool], poll_interval: float, handler: FileSystemEventHandler
) -> list[BaseObserver]:
    """One native and one polling observer at most, each watching its folders (recursively), started.

    A folder where inotify fails (watch or instance limit reached) is polled instead: `polled` says so."""
    observers: list[BaseObserver] = []
    native: BaseObserver | None = None
    polling: BaseObserver | None = None
    for root in roots:
        if not polled[root]:
            if native is None:
                native = _started(Observer(), observers)
            try:
                native.schedule(handler, str(root), recursive=True, event_filter=EVENTS)
                continue
            except OSError as err:
                logger.warning("cannot use inotify on {} ({}); polling it instead", root, err)
                polled[root] = True
        if polling is None:
            polling = _started(PollingObserver(timeout=poll_interval), observers)
        polling.schedule(handler, str(root), recursive=True, event_filter=EVENTS)
    return observers


def _started(observer: BaseObserver, observers: list[BaseObserver]) -> BaseObserver:
    observer.name = f"ingester-watch-{type(observer).__name__}"
    observer.start()
    observers.append(observer)
    return observer


class SpoolEvents(FileSystemEventHandler):
    """Turn watchdog's events into notes for the watcher; never blocks the observer thread."""

    def __init__(self, watcher: Any):  # a SpoolWatcher: note, scan_folder, table
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self._dispatch(event)
        except Exception:  # an exception here would end the observer's thread
            logger.exception("handling {!r} raised", event)

    def _dispatch(self, event: FileSystemEvent) -> None:
        watcher, table = self._watcher, self._watcher.table
        src = Path(os.fsdecode(event.src_path))
        if isinstance(event, (FileCreatedEvent, FileModifiedEvent, FileClosedEvent)):
            watcher.note(src)
        elif isinstance(event, FileMovedEvent):
            table.forget(src)
            watcher.note(Path(os.fsdecode(event.dest_path)))
        elif isinstance(event, FileDeletedEvent):
            table.forget(src)
        elif isinstance(event, DirDeletedEvent):
            table.forget_under(src)
        elif isinstance(event, DirMovedEvent):
            table.forget_under(src)
            watcher.scan_folder(Path(os.fsdecode(event.dest_path)))
        elif isinstance(event, DirCreatedEvent):
            watcher.scan_folder(src)
