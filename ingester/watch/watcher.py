"""Watch stage: follow spool folders and hand each run file to a callback once it is complete.

`SpoolWatcher.run(stop)` catches up on the files already there (a full scan), then follows
filesystem events: watchdog's inotify observer for local folders, its polling observer for folders
on network filesystems (chosen per folder from the mount table, `ingester.watch.mounts`), because
inotify never hears of writes made by another NFS client. Every event only makes a file pending in
a `SettleTable` (`ingester.watch.settle`), which decides when it is ready: quiet for `settle` seconds
and ending with a stop document. An APScheduler background scheduler runs the jobs: the settle
check that hands ready files over, a full rescan every `rescan_interval` seconds (the safety net
for missed events), and the heartbeat (`on_heartbeat(state, scanned=...)`). A databroker-pack's
`catalog.yml` that arrives or changes hands the pack's documents over again, even unchanged: the
ones that came before it were read without its root map.

Ready files go to ONE worker thread, one at a time, which calls `on_ready(path)` and gets back
its `Outcome`; `failed`, or the callback raising, is retried with exponential backoff;
`claimed-elsewhere` (another worker has it) and `in-progress-elsewhere` (another writer is still
writing its run into Tiled) are looked at again after `recheck_claimed`. When `stop`
is set, no new work is taken, the file in hand is finished, and the observers, the scheduler and
the worker are shut down before `run` returns.

The watcher knows nothing of Tiled, the ledger or the run documents: it never opens a run file
beyond its last bytes, and what becomes of a file is the callback's business.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from watchdog.observers.api import BaseObserver

from ingester.logs import logger
from ingester.read.discover import find_run_files, is_run_file_name
from ingester.read.pack import CATALOG_FILE, find_pack, pack_takes
from ingester.status import Outcome
from ingester.watch.mounts import filesystem_type, is_network_filesystem
from ingester.watch.observers import SpoolEvents, start_observers
from ingester.watch.settle import INCOMPLETE, Handover, SettleTable, take_snapshot

__all__ = ["SpoolWatcher", "WatchError", "WatchOptions"]

_QUIET_STATUSES = (Outcome.UNCHANGED, Outcome.ALREADY_PRESENT)  # at debug: a restart's catch-up is mostly these
# Another worker has the file, or another writer is still writing its run into Tiled: look again later.
_ELSEWHERE = (Outcome.CLAIMED_ELSEWHERE, Outcome.IN_PROGRESS_ELSEWHERE)


class WatchError(RuntimeError):
    """The watcher cannot go on watching (a folder vanished, an observer died); raised by `run`."""


@dataclass(frozen=True)
class WatchOptions:
    """How a `SpoolWatcher` watches; times are in seconds.

    `poll`: True polls every folder, False uses inotify everywhere, None polls the folders on network
    filesystems. `settle`: how long a finished file must stay unchanged. `incomplete_after`: a file
    that has not changed for this long without a stop document is reported once and handed over.
    `retry_base`, doubling up to `retry_max`: when a failed file is tried again. `recheck_claimed`:
    when a file another worker holds is looked at again.
    """

    settle: float = 2.0
    poll: bool | None = None
    poll_interval: float = 5.0
    rescan_interval: float = 600.0
    incomplete_after: float = 86400.0
    heartbeat_interval: float = 10.0
    retry_base: float = 30.0
    retry_max: float = 3600.0
    recheck_claimed: float = 20.0


class SpoolWatcher:
    """Hand run files that land under `paths` (folders, watched recursively) to `on_ready`.

    `on_incomplete(path)` hears of a file that stayed without stop (see `WatchOptions`).
    `on_heartbeat(state, scanned=...)` (`Ledger.heartbeat` fits as it is) hears every
    `heartbeat_interval` seconds and after each full scan (`scanned=True`).
    """

    def __init__(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        on_ready: Callable[[Path], str],
        options: WatchOptions = WatchOptions(),
        on_incomplete: Callable[[Path], None] | None = None,
        on_heartbeat: Callable[..., None] | None = None,
    ):
        self.roots = list(dict.fromkeys(Path(os.path.abspath(p)) for p in paths))
        if not self.roots:
            raise ValueError("nothing to watch: no folder given")
        for root in self.roots:
            if not root.is_dir():
                raise NotADirectoryError(f"not a folder: {root}")
        poll = options.poll
        self.polled = {root: is_network_filesystem(root) if poll is None else poll for root in self.roots}
        self.poll_interval = options.poll_interval
        self.rescan_interval = options.rescan_interval
        self.heartbeat_interval = options.heartbeat_interval
        self.recheck_claimed = options.recheck_claimed
        self.tick = max(0.05, min(options.settle / 5, 0.1))  # a ready file waits at most one tick
        self.table = SettleTable(
            settle=options.settle, incomplete_after=options.incomplete_after, retry_base=options.retry_base,
            retry_max=options.retry_max,
        )  # fmt: skip
        self._on_ready = on_ready
        self._on_incomplete = on_incomplete
        self._on_heartbeat = on_heartbeat
        self._lock = threading.Lock()
        self._ran = False
        self._stop: threading.Event | None = None
        self._stop_requested = False
        self._stopping = threading.Event()
        self._work: queue.Queue[Handover | None] = queue.Queue()
        self._current: Path | None = None
        self._last_scan = ""
        self.last_scan_at: float | None = None  # when the last full scan ended (time.time())
        self._ticking = threading.Lock()
        self._observers: list[BaseObserver] = []
        self._scheduler: BackgroundScheduler | None = None
        self._worker: threading.Thread | None = None

    # --- running -----------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> None:
        """Watch until `stop` is set (or `request_stop` is called); everything is shut down on return."""
        stop = stop or threading.Event()
        with self._lock:
            if self._ran:
                raise RuntimeError("a SpoolWatcher runs once; make a new one")
            self._ran, self._stop = True, stop
            if self._stop_requested:
                stop.set()
        try:
            self._start()
            while not stop.wait(1.0):
                self._check_observers()
        finally:
            self._shut_down()

    def request_stop(self) -> None:
        """Ask `run` to return once the file in hand is finished (from any thread)."""
        with self._lock:
            self._stop_requested = True
            if self._stop is not None:
                self._stop.set()

    def state(self) -> str:
        """One line on what the watcher is doing, as the heartbeat reports it."""
        if self._stopping.is_set():
            return "stopping" + (f", finishing {self._current}" if self._current else "")
        c = self.table.counts()
        polled = sum(self.polled.values())
        text = (
            f"watching {len(self.roots)} folder(s) ({polled} polled): {c['pending']} pending "
            f"({c['without_stop']} without stop), {self._work.qsize()} queued, {c['retrying']} retrying, "
            f"{c['done']} handed over"
        )
        if self._current:
            text += f"; working on {self._current}"
        return text + (f"; last scan {self._last_scan}" if self._last_scan else "")

    def pending(self) -> int:
        """Run files seen and not done with: settling, being written, queued, in hand, or to be retried."""
        c = self.table.counts()
        return c["pending"] + c["retrying"]

    def alive(self) -> bool:
        """Running, with every observer (and each folder's emitter) and the worker thread alive."""
        if self._worker is None or not self._worker.is_alive() or self._stopping.is_set():
            return False
        return all(o.is_alive() and all(e.is_alive() for e in list(o.emitters)) for o in self._observers)

    def _start(self) -> None:
        self._worker = threading.Thread(target=self._work_loop, name="ingester-watch-worker")
        self._worker.start()
        self._start_observers()
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        now = datetime.now(UTC)
        add = self._scheduler.add_job
        add(_logged(self._rescan), "interval", seconds=self.rescan_interval, next_run_time=now, id="rescan")
        add(_logged(self._settle_tick), "interval", seconds=self.tick, max_instances=2, id="settle")
        add(_logged(self._heartbeat), "interval", seconds=self.heartbeat_interval, id="heartbeat")
        self._scheduler.start()
        kinds = ", ".join(f"{root} ({self._kind(root)})" for root in self.roots)
        logger.info("watching {}; settle {} s, rescan every {} s", kinds, self.table.settle, self.rescan_interval)

    def _kind(self, root: Path) -> str:
        fs = filesystem_type(root) or "unknown filesystem"
        return f"{fs}, polled every {self.poll_interval} s" if self.polled[root] else f"{fs}, inotify"

    def _start_observers(self) -> None:
        self._observers = start_observers(self.roots, self.polled, self.poll_interval, SpoolEvents(self))

    def _check_observers(self) -> None:
        for observer in self._observers:
            if not observer.is_alive() or not all(e.is_alive() for e in list(observer.emitters)):
                raise WatchError(f"{type(observer).__name__} stopped watching (was a watched folder removed?)")

    def _shut_down(self) -> None:
        self._stopping.set()
        if self._current is not None:
            logger.info("stopping: finishing {} first", self._current)
        for observer in self._observers:
            observer.stop()
        for observer in self._observers:
            if observer.is_alive():
                observer.join()
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        if self._worker is not None:
            self._work.put(None)
            self._worker.join()
        self._heartbeat(text="stopped")
        logger.info("stopped watching")

    # --- what is heard -----------------------------------------------------------------------

    def _wanted(self, path: Path) -> bool:
        """A run file by its name, not below a hidden folder (what `find_run_files` would find)."""
        if not is_run_file_name(path.name) or not pack_takes(path):
            return False
        root = next((r for r in self.roots if path.is_relative_to(r)), None)
        return root is not None and not any(part.startswith(".") for part in path.relative_to(root).parts)

    def note(self, path: Path) -> None:
        if self._stopping.is_set():
            return
        if path.name == CATALOG_FILE:
            self._note_pack(path.parent)
        elif self._wanted(path):
            self.table.note(path)

    def _note_pack(self, folder: Path) -> None:
        """A catalog.yml arrived or changed: the pack's documents are looked at again (those that came
        before it were read without its root map). The folder is globbed by the scheduler, not here."""
        if self._scheduler is not None:
            self._scheduler.add_job(_logged(self._renote_pack), args=[folder], name=f"pack {folder}")

    def _renote_pack(self, folder: Path) -> None:
        pack = find_pack(folder)
        for path in pack.document_files() if pack is not None else []:
            if self._wanted(path) and take_snapshot(path) is not None:
                self.table.reconsider(path)

    def scan_folder(self, folder: Path) -> None:
        """A folder appeared (created or moved in): what it already holds may have no events."""
        if not self._stopping.is_set() and self._scheduler is not None:
            self._scheduler.add_job(_logged(self._scan), args=[[folder]], name=f"scan {folder}")

    def _rescan(self) -> None:
        started = time.monotonic()
        seen = self._scan(self.roots)
        if seen is None:
            return
        self.table.retain(seen, started)
        took = time.monotonic() - started
        self._last_scan = f"{datetime.now().astimezone():%H:%M:%S}, {len(seen)} files in {took:.1f} s"
        self.last_scan_at = time.time()
        self._heartbeat(scanned=True)

    def _scan(self, folders: list[Path]) -> set[Path] | None:
        """Offer every run file under `folders` to the table; the files seen, None if stopped midway."""
        seen, queued = set(), 0
        for path in find_run_files(folders):
            if self._stopping.is_set():
                return None
            if not self._wanted(path):
                continue
            snapshot = take_snapshot(path)
            if snapshot is not None:
                seen.add(path)
                queued += self.table.offer(path, snapshot)
        if queued:
            logger.info("scan of {}: {} new or changed file(s)", ", ".join(map(str, folders)), queued)
        return seen

    # --- what is handed over -----------------------------------------------------------------

    def _settle_tick(self) -> None:
        if not self._ticking.acquire(blocking=False):
            return  # the previous check is still stat-ing (slow network filesystem)
        try:
            for handover in self.table.due():
                if self._stopping.is_set():
                    return
                if handover.why == INCOMPLETE:
                    logger.warning(
                        "{} has no stop document and has not changed for {} s",
                        handover.path,
                        self.table.incomplete_after,
                    )
                    self._call_quietly(self._on_incomplete, handover.path)
                self._work.put(handover)
        finally:
            self._ticking.release()

    def _work_loop(self) -> None:
        while True:
            handover = self._work.get()
            if handover is None or self._stopping.is_set():
                return
            if take_snapshot(handover.path) is None:
                self.table.withdraw(handover.path)  # deleted or moved away while queued
                continue
            self._current = handover.path
            try:
                status = self._on_ready(handover.path)
            except Exception:
                logger.exception("handling {} raised", handover.path)
                status = Outcome.FAILED
            finally:
                self._current = None
            if status in _ELSEWHERE and self._scheduler is not None:  # its owner finishes it, or dies
                self.table.withdraw(handover.path)
                when = datetime.now(UTC) + timedelta(seconds=self.recheck_claimed)
                self._scheduler.add_job(self.table.note, "date", run_date=when, args=[handover.path])
                continue
            delay = self.table.finished(handover.path, status)
            if delay is not None:
                logger.warning("{}: {}; trying again in {:g} s", status, handover.path, delay)
            elif status in _QUIET_STATUSES:
                logger.debug("{}: {}", status, handover.path)
            else:
                logger.info("{}: {}", status, handover.path)

    def _heartbeat(self, *, scanned: bool = False, text: str | None = None) -> None:
        self._call_quietly(self._on_heartbeat, text or self.state(), scanned=scanned)

    @staticmethod
    def _call_quietly(callback: Callable[..., Any] | None, *args: Any, **kwargs: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args, **kwargs)
        except Exception:
            logger.exception("{} raised", getattr(callback, "__name__", callback))


def _logged(job: Callable[..., Any]) -> Callable[..., Any]:
    """A scheduler job whose exceptions are logged with ours (the next run tries again)."""

    @functools.wraps(job)
    def run(*args: Any) -> Any:
        try:
            return job(*args)
        except Exception:
            logger.exception("{} raised", job.__name__)
            return None

    return run
