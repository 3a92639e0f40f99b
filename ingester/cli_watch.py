"""`ingester watch`: the long-running ingester of a spool folder (local or NFS).

Joins the watcher (which knows nothing of Tiled) to the batch's per-file processing (which knows
nothing of watching): each file the watcher finds ready is processed as `ingest-dir` would, and
recorded in the same ledger, so a restart re-ingests nothing. SIGINT/SIGTERM let the file in hand
finish, then exit 0.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer

from ingester.cli import app
from ingester.cli_ingest import IncompleteOpt, LeaseOpt, ParallelOpt, _fail, _open
from ingester.cli_options import (
    CatalogOpt,
    ConfigOpt,
    DataRootOpt,
    JobsOpt,
    LedgerOpt,
    PathsArg,
    RootMapOpt,
    ServerPathOpt,
    TiledUriOpt,
    build_settings,
)

Seconds = float


@app.command()
def watch(
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
    poll: Annotated[
        bool | None,
        typer.Option("--poll/--no-poll", help="Force the polling observer (NFS...) or inotify [default: from the mount type]."),
    ] = None,
    poll_interval: Annotated[Seconds, typer.Option("--poll-interval", help="Seconds between polls.")] = 5.0,
    settle: Annotated[Seconds, typer.Option("--settle", help="Seconds a finished file must stay unchanged.")] = 2.0,
    rescan_interval: Annotated[
        Seconds, typer.Option("--rescan-interval", help="Seconds between full rescans (the safety net).")
    ] = 600.0,
    incomplete_after: Annotated[
        Seconds, typer.Option("--incomplete-after", help="Report a run without stop after this many seconds.")
    ] = 86400.0,
    retry_base: Annotated[
        Seconds, typer.Option("--retry-after", help="First retry of a failed file (doubling, up to an hour).")
    ] = 30.0,
    log_json: Annotated[bool, typer.Option("--log-json", help="Log one JSON object a line.")] = False,
    lease: LeaseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Follow PATHS and ingest each run as soon as it is complete; runs until SIGINT/SIGTERM."""
    from ingester.batch import BatchOptions, _Guards, process_file
    from ingester.places import path_rules
    from ingester.lease import LeaseKeeper
    from ingester.logs import logger, setup_logging
    from ingester.watch import SpoolWatcher, install_signal_handlers

    stop = threading.Event()
    restore = install_signal_handlers(stop)  # first: a SIGTERM during start-up is a clean exit too
    setup_logging(json=log_json)
    settings = build_settings(
        config, catalog=catalog, tiled_uri=tiled_uri, data_roots=data_root, root_map=root_map,
        server_paths=server_path, ledger=ledger, jobs=jobs, include_incomplete=include_incomplete,
        parallel_writes=parallel_writes, lease=lease,
    )
    folders = [p for p in paths if p.is_dir()]
    if len(folders) != len(paths):
        raise _fail(f"not a folder: {', '.join(str(p) for p in paths if not p.is_dir())}")
    stack, target, book = _open(settings, paths, command="watch")
    # The watcher's own heartbeat (every 10 s) says this worker is alive; the keeper renews its claims.
    keeper = stack.enter_context(LeaseKeeper(book, settings.lease))
    rules, guards = path_rules(settings), _Guards(not settings.parallel_writes, keeper)

    def on_ready(path: Path) -> str:
        record = book.lookup(path)
        options = BatchOptions(force=record is not None and record.status == "failed")
        outcome = process_file(path, client=target.writer_root, ledger=book, rules=rules, settings=settings,
                               options=options, guards=guards)
        for run in outcome.runs:
            for problem in run.problems[:5]:
                logger.warning("{}", problem)
        if outcome.status not in ("unchanged", "claimed-elsewhere"):
            logger.info("{} {} ({} runs, {} events, {:.2f} s)", outcome.status, path, len(outcome.runs),
                        outcome.events, outcome.seconds)
        return outcome.status

    def on_incomplete(path: Path) -> None:
        logger.warning("{}: no stop document after {:.0f} s: the run is incomplete", path, incomplete_after)

    with stack:
        try:
            watcher = SpoolWatcher(
                folders, on_ready=on_ready, settle=settle, poll=poll, poll_interval=poll_interval,
                rescan_interval=rescan_interval, incomplete_after=incomplete_after, on_incomplete=on_incomplete,
                on_heartbeat=book.heartbeat, retry_base=retry_base, recheck_claimed=settings.lease / 3,
            )
            logger.info("watching {} -> {}", ", ".join(map(str, folders)), target.description)
            watcher.run(stop)
        except Exception as err:
            logger.error("watch stopped: {}: {}", type(err).__name__, err)
            raise typer.Exit(1) from None
        finally:
            restore()
    logger.info("stopped")
