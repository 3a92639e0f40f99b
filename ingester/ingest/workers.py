"""Several writer processes on one embedded catalog, so that `ingest-dir` on many files uses every core.

Writing a small run into the embedded catalog is mostly Python (Tiled's catalog adapter, SQLAlchemy):
about 150 ms of one core, and threads of one process share one core. So for many files `ingest-dir`
starts writer processes, each with its share of the files, its share of the `jobs` threads and its own
tabular storage: DuckDB admits one process a file, so writer `k` > 0 creates its tables in
`storage-k.duckdb` (see `CatalogLayout`). The SQLite catalog and the ledger are shared the way
several hosts share them: every file and every run is claimed before it is worked on.

A writer never opens another writer's DuckDB file. A run whose uid is in the catalog already (the same
run, a conflict, a crash's leftover to replace) may keep its tables in one, so the writer leaves it
(`deferred`, nothing recorded for its file: `RunIngester.defer_existing`) and the caller passes those
files, once every writer has finished, to the usual one-process path, which can open them all. The
parent process only starts the writers, shows their outcomes as they come (`on_file`) and adds them
up; it does not import Tiled.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queues
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingester.config import Settings
from ingester.ingest.files import BatchOptions
from ingester.ingest.outcomes import FileOutcome, Summary
from ingester.logs import logger
from ingester.status import Outcome

__all__ = ["MIN_FILES_PER_PROCESS", "writer_processes", "run_in_processes"]

# Below this many files for each extra process, its start-up (~8 s of one core: importing Tiled's
# server side and opening the catalog) costs more than it saves.
MIN_FILES_PER_PROCESS = 50
_READY_TIMEOUT = 600.0  # seconds the other writers wait for the first to open (create) the catalog


def writer_processes(settings: Settings, options: BatchOptions, files: int) -> int:
    """How many writer processes to ingest `files` files with: more than one only for the embedded
    catalog, when writing (not a dry run); `settings.processes`, or (0) one a core once there are
    `MIN_FILES_PER_PROCESS` files for each and at least as many `jobs`."""
    if settings.tiled_uri or options.dry_run or files < 2:
        return 1
    if settings.processes:
        return min(settings.processes, files)
    cores = os.cpu_count() or 1
    return max(1, min(cores, settings.jobs or cores, files // MIN_FILES_PER_PROCESS))


@dataclass
class _Job:
    """What one writer process is given: its index, its files, and how to ingest them."""

    index: int
    files: list[Path]
    settings: Settings
    options: BatchOptions
    readable_roots: list[Path]


@dataclass
class _Channels:
    """How the parent and a writer talk: outcomes (`messages`), the catalog is open (`ready`), stop now
    (`stop`), and the parent's pid (a writer whose parent is gone exits)."""

    messages: Any
    ready: Any
    stop: Any
    parent: int


class _Writers:
    """The writer processes of one `run_in_processes`, and what each has reported so far."""

    def __init__(self, files: list[Path], settings: Settings, options: BatchOptions, processes: int, roots: list[Path]):
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or locks inherited
        # Kept here: a started Process drops its arguments, and a semaphore nobody holds is unlinked
        # before the spawned child has unpickled its handle.
        self.messages, self.ready, self.stop = context.Queue(), context.Event(), context.Event()
        jobs = max(1, (settings.jobs or os.cpu_count() or 1) // processes)
        # The plain settings class: the one load_settings made (it reads a TOML file) does not pickle.
        plain = Settings.model_construct(**{**settings.model_dump(), "jobs": jobs})
        self.shares = [files[index::processes] for index in range(processes)]
        channels = _Channels(self.messages, self.ready, self.stop, os.getpid())
        self.processes = [
            context.Process(
                target=_writer, name=f"ingester-writer-{index}",
                args=(_Job(index, share, plain, options, roots), channels),
            )
            for index, share in enumerate(self.shares)
        ]  # fmt: skip
        self.reported: list[set[Path]] = [set() for _ in self.processes]
        self.started: list[Any] = []

    def unreported(self, index: int) -> list[Path]:
        return [path for path in self.shares[index] if path not in self.reported[index]]

    def stop(self) -> None:
        for writer in self.started:
            if writer.is_alive():
                writer.terminate()

    def join(self) -> None:
        for writer in self.started:
            writer.join()


def run_in_processes(
    files: list[Path],
    settings: Settings,
    options: BatchOptions,
    *,
    processes: int,
    readable_roots: list[Path],
    on_file: Callable[[FileOutcome], None] = lambda outcome: None,
    stop: Any = None,
) -> tuple[Summary, list[Path]]:
    """Ingest `files` with `processes` writer processes; return their outcomes and the files left to
    one process: runs already in the catalog, and the files of a writer that could not open the
    catalog or the ledger (the last pass then says why, or does them). A writer that dies leaves its
    unreported files `failed` (their claims expire; the next `ingest-dir` takes them up).

    The writers ignore SIGINT and SIGTERM: once `stop` is set (the parent's signal handler), they
    are told to take no new file and to finish the run in hand; a writer whose parent died exits."""
    started = time.perf_counter()
    writers = _Writers(files, settings, options, processes, readable_roots)
    summary = Summary(target=str(Path(settings.catalog).absolute()))
    deferred: list[Path] = []
    try:
        with _signals_ignored():  # inherited by the writers, which the parent stops through `writers.stop`
            for writer in writers.processes:
                writer.start()
                writers.started.append(writer)
        _follow(writers, summary, deferred, on_file, stop)
    except BaseException:
        writers.stop()
        raise
    finally:
        writers.join()
    summary.seconds = time.perf_counter() - started
    return summary, deferred


def _follow(
    writers: _Writers, summary: Summary, deferred: list[Path], on_file: Callable[[FileOutcome], None], stop: Any
) -> None:
    """Take the writers' messages until every writer is done, could not work, or died."""
    running, exited = set(range(len(writers.processes))), set()
    while running:
        if stop is not None and stop.is_set():
            writers.stop.set()
        try:
            kind, index, payload = writers.messages.get(timeout=1.0)
        except queues.Empty:
            # A writer that exited has flushed what it sent; seen exited twice, a second apart,
            # with nothing from it in between, it died without saying it was done.
            gone = {index for index in running if writers.processes[index].exitcode is not None}
            for index in gone & exited:
                _dead(writers, index, summary, on_file)
            running -= gone & exited
            exited = gone
            continue
        if kind == "file":
            writers.reported[index].add(payload.path)
            if payload.status == Outcome.DEFERRED:
                deferred.append(payload.path)
            else:
                summary.files.append(payload)
                on_file(payload)
        elif kind == "done":
            summary.claim_seconds += payload[0]
            summary.claim_calls += payload[1]
            running.discard(index)
        else:  # it could not work (the catalog or the ledger would not open): its files go to the last pass
            logger.warning("{}; its remaining files are left to one process", payload)
            deferred.extend(writers.unreported(index))
            running.discard(index)


def _dead(writers: _Writers, index: int, summary: Summary, on_file: Callable[[FileOutcome], None]) -> None:
    """A writer that exited without saying it was done: its unreported files failed."""
    reason = f"the writer process died (exit code {writers.processes[index].exitcode}) before this file was done"
    for path in writers.unreported(index):
        outcome = FileOutcome(path, Outcome.FAILED, reason=reason)
        summary.files.append(outcome)
        on_file(outcome)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM ignored meanwhile (in the main thread; elsewhere, nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _exit_with_parent(parent: int) -> None:
    """A thread that ends this writer once its parent is gone (killed, or aborted at once)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="ingester-parent-watch", daemon=True).start()


def _writer(job: _Job, channels: _Channels) -> None:
    """One writer process: open the catalog (the first writer creates it, the others wait for that),
    ingest its files with `run_batch`, and send each outcome, then ("done", claim time and calls)."""
    from ingester.logs import setup_logging

    for signum in (signal.SIGINT, signal.SIGTERM):  # the parent decides when to stop: `channels.stop`
        signal.signal(signum, signal.SIG_IGN)
    _exit_with_parent(channels.parent)
    setup_logging(level="WARNING")  # the parent shows the outcomes
    index, messages = job.index, channels.messages
    try:
        summary = _write(job, channels)
        messages.put(("done", index, (summary.claim_seconds, summary.claim_calls)))
    except BaseException as err:  # the parent reports it; the other writers go on
        channels.ready.set()
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        messages.put(("error", index, f"writer {index}: {reason}"))


def _write(job: _Job, channels: _Channels) -> Summary:
    from ingester.config import ledger_url, target_key
    from ingester.ingest.batch import run_batch
    from ingester.ingest.files import FileIngester
    from ingester.ledger.store import Ledger
    from ingester.target.targets import open_embedded

    settings, index = job.settings, job.index
    if index:  # the long import first, while the first writer opens (maybe creates) the catalog
        import tiled.server.app  # noqa: F401

        if not channels.ready.wait(_READY_TIMEOUT):
            raise TimeoutError(f"the first writer did not open the catalog within {_READY_TIMEOUT:.0f} s")
    command = f"ingest-dir (writer {index})"
    with (
        Ledger.open(ledger_url(settings), target_key(settings), command=command) as ledger,
        open_embedded(settings.catalog, job.readable_roots, writer=index) as target,
    ):
        channels.ready.set()
        ingester = FileIngester(
            target.writer_root, ledger, settings, job.options, defer_existing=True, stop=channels.stop
        )
        return run_batch(
            job.files, ingester, target=target.description,
            on_file=lambda outcome: channels.messages.put(("file", index, outcome)),
        )  # fmt: skip
