"""`ingester watch`: the long-running ingester of a spool folder (local or NFS).

Joins the watcher (which knows nothing of Tiled) to the batch's per-file processing (which knows
nothing of watching): each file the watcher finds ready is processed as `ingest-dir` would, and
recorded in the same ledger, so a restart re-ingests nothing. SIGINT/SIGTERM let the file in hand
finish, then exit 0. With `--serve` the embedded catalog is also served to Tiled clients from this
process (DuckDB admits one process a catalog), and the heartbeat says where.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ingester.cli.opening import fail, open_ledger, open_served_target, open_target
from ingester.cli.options import (
    CatalogOpt,
    ConfigOpt,
    DataRootOpt,
    HostOpt,
    IncompleteAfterOpt,
    IncompleteOpt,
    JobsOpt,
    LeaseOpt,
    LedgerOpt,
    LeftoverAfterOpt,
    LogJsonOpt,
    MetricsHostOpt,
    MetricsPortOpt,
    OnMissingFileOpt,
    ParallelOpt,
    PathsArg,
    PollIntervalOpt,
    PollOpt,
    PortOpt,
    RescanIntervalOpt,
    RetryAfterOpt,
    RootMapOpt,
    ServeOpt,
    ServerPathOpt,
    SettleOpt,
    TiledUriOpt,
    build_settings,
)
from ingester.config import Settings, readable_roots
from ingester.status import Outcome

if TYPE_CHECKING:
    from ingester.cli.ops import Operations
    from ingester.watch.watcher import WatchOptions

__all__ = ["watch"]


@dataclass(frozen=True)
class Serving:
    """Where `watch --serve` serves the catalog it writes."""

    host: str
    port: int


def watch(  # noqa: PLR0913 - one parameter a command-line option
    paths: PathsArg,
    catalog: CatalogOpt = None,
    tiled_uri: TiledUriOpt = None,
    data_root: DataRootOpt = None,
    root_map: RootMapOpt = None,
    server_path: ServerPathOpt = None,
    ledger: LedgerOpt = None,
    jobs: JobsOpt = None,
    include_incomplete: IncompleteOpt = None,
    parallel_writes: ParallelOpt = None,
    poll: PollOpt = None,
    poll_interval: PollIntervalOpt = 5.0,
    settle: SettleOpt = 2.0,
    rescan_interval: RescanIntervalOpt = 600.0,
    incomplete_after: IncompleteAfterOpt = 86400.0,
    retry_base: RetryAfterOpt = 30.0,
    log_json: LogJsonOpt = False,
    lease: LeaseOpt = None,
    on_missing_file: OnMissingFileOpt = None,
    leftover_after: LeftoverAfterOpt = None,
    serve: ServeOpt = False,
    port: PortOpt = 8000,
    host: HostOpt = "127.0.0.1",
    metrics_port: MetricsPortOpt = None,
    metrics_host: MetricsHostOpt = "127.0.0.1",
    config: ConfigOpt = None,
) -> None:
    """Follow PATHS and ingest each run as soon as it is complete; runs until SIGINT/SIGTERM.

    With --serve, Tiled clients read the embedded catalog from this process while it is written;
    with --metrics-port, Prometheus scrapes /metrics and probes /healthz."""
    from ingester.cli.ops import serving_operations
    from ingester.cli.signals import install_signal_handlers
    from ingester.logs import setup_logging
    from ingester.watch.watcher import WatchOptions

    stop = threading.Event()
    signals = install_signal_handlers(stop)  # first: a SIGTERM during start-up is a clean exit too
    try:
        setup_logging(json=log_json)
        settings = build_settings(
            config, catalog=catalog, tiled_uri=tiled_uri, data_roots=data_root, root_map=root_map,
            server_paths=server_path, ledger=ledger, jobs=jobs, include_incomplete=include_incomplete,
            parallel_writes=parallel_writes, lease=lease, on_missing_file=on_missing_file,
            leftover_after=leftover_after,
        )  # fmt: skip
        if serve and settings.tiled_uri:
            raise fail("--serve serves the embedded catalog; a Tiled server (--tiled-uri) serves itself")
        folders = [p for p in paths if p.is_dir()]
        if len(folders) != len(paths):
            raise fail(f"not a folder: {', '.join(str(p) for p in paths if not p.is_dir())}")
        options = WatchOptions(
            settle=settle, poll=poll, poll_interval=poll_interval, rescan_interval=rescan_interval,
            incomplete_after=incomplete_after, retry_base=retry_base, recheck_claimed=settings.lease / 3,
        )  # fmt: skip
        with serving_operations(settings, metrics_port, metrics_host, stale_after=2 * rescan_interval + 60) as ops:
            _watch(folders, settings, options, stop, Serving(host, port) if serve else None, ops)
    finally:
        signals.restore()


def _watch(
    folders: list[Path], settings: Settings, options: WatchOptions, stop: threading.Event, serving: Serving | None,
    ops: Operations | None,
) -> None:  # fmt: skip
    """Open the ledger and the target (serving it with `serving`), then follow the folders until `stop`;
    `ops` (metrics and health) hears of each as it opens."""
    from ingester.logs import logger

    with open_ledger(settings, "watch") as book:
        roots = readable_roots(settings, folders)
        if serving is None:
            target = open_target(settings, roots)
        else:
            target = open_served_target(settings, roots, host=serving.host, port=serving.port)
        if ops is not None:
            ops.health.ledger, ops.health.target = book, target
        with target:
            _follow(folders, settings, options, stop, book, target, ops)
        if target.serving:
            book.heartbeat("stopped")  # the server is down now too
    logger.info("stopped")


def _follow(folders: list[Path], settings: Settings, options: WatchOptions, stop, book, target, ops) -> None:
    """Hand every ready file to one `FileIngester` until `stop`."""
    from ingester.ingest.files import BatchOptions, FileIngester
    from ingester.logs import logger
    from ingester.watch.watcher import SpoolWatcher

    # The watcher's own heartbeat (every 10 s) says this worker is alive; the keeper renews its claims.
    ingester = FileIngester(target.writer_root, book, settings, BatchOptions(), heartbeat=False, retry_failed=True)
    heartbeat = book.heartbeat if not target.serving else functools.partial(_serving_heartbeat, book, target.serving)

    def on_incomplete(path: Path) -> None:
        logger.warning("{}: no stop document after {:.0f} s: the run is incomplete", path, options.incomplete_after)

    with ingester:
        try:
            watcher = SpoolWatcher(
                folders, on_ready=functools.partial(_on_ready, ingester, ops), on_incomplete=on_incomplete,
                on_heartbeat=heartbeat, options=options,
            )  # fmt: skip
            if ops is not None:
                ops.health.watcher = watcher
                ops.metrics.pending_from(watcher.pending)
            serving = f"; serving {target.serving}" if target.serving else ""
            logger.info("watching {} -> {}{}", ", ".join(map(str, folders)), target.description, serving)
            watcher.run(stop)
        except Exception as err:
            logger.error("watch stopped: {}: {}", type(err).__name__, err)
            raise typer.Exit(1) from None


def _serving_heartbeat(book: Any, url: str, state: str, *, scanned: bool = False) -> None:
    """The watcher's heartbeat, saying where the catalog is served (what `ingester status` shows)."""
    book.heartbeat(f"serving {url}; {state}", scanned=scanned)


def _on_ready(ingester, ops: Operations | None, path: Path) -> str:
    """One ready file through the ingester; its status for the watcher, its problems to the log, its
    counts to the metrics."""
    from sqlalchemy.exc import SQLAlchemyError

    from ingester.logs import logger

    try:
        outcome = ingester.process(path)
    except SQLAlchemyError:  # what escapes `process` so is the ledger's (the pipeline takes the target's)
        if ops is not None:
            ops.metrics.count_error("ledger")
        raise
    if ops is not None:
        ops.metrics.count_file(outcome)
    for run in outcome.runs:
        for problem in run.problems[:5]:
            logger.warning("{}", problem)
    if outcome.status not in (Outcome.UNCHANGED, Outcome.CLAIMED_ELSEWHERE):
        logger.info(
            "{} {} ({} runs, {} events, {:.2f} s)",
            outcome.status,
            path,
            len(outcome.runs),
            outcome.events,
            outcome.seconds,
        )
    return outcome.status
