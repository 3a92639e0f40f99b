"""The ledger-backed commands: `ingest-dir`, `retry`, `status`.

Thin: build settings and options, open the target and the ledger, hand the files to `batch`, show
progress and the summary. Exit codes: 0 all ingested or already present (incomplete files only
reported), 1 anything refused or failed, 2 bad usage or an unreachable target.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ingester.cli import app
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

DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Validate and resolve everything; write nothing.")]
IncompleteOpt = Annotated[
    bool | None, typer.Option("--include-incomplete", help="Also ingest runs without a stop (marked as such).")
]
ReplaceOpt = Annotated[bool, typer.Option("--replace", help="Replace a run already in Tiled with different content.")]
ReportOpt = Annotated[Path | None, typer.Option("--report", help="Write a JSON report, one entry per file.")]
LeaseOpt = Annotated[
    float | None,
    typer.Option("--lease", min=0.1, help="Seconds a claim lasts unless renewed; a dead worker's claims expire after it [default: 60]."),
]
ProcessesOpt = Annotated[
    int | None,
    typer.Option("--processes", min=0, help="Writer processes into the embedded catalog [default: 0, one a core for many files]."),
]
ParallelOpt = Annotated[
    bool | None,
    typer.Option("--parallel-writes/--serial-writes", help="Write runs concurrently (only for Tiled on PostgreSQL)."),
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _open(settings, paths: list[Path], command: str = "ingest-dir"):
    """The target and the ledger, or exit 2 saying why (without any secret)."""
    stack, ledger = _open_ledger(settings, command)
    with _closing_on_error(stack):
        return stack, _open_target(settings, paths, stack), ledger


def _open_ledger(settings, command: str) -> tuple[ExitStack, Any]:
    from ingester.places import ledger_url, target_key
    from ingester.ledger import Ledger

    stack = ExitStack()
    try:
        ledger = stack.enter_context(Ledger.open(ledger_url(settings), target_key(settings), command=command))
    except Exception as err:
        stack.close()
        raise _fail(f"cannot open the ledger: {type(err).__name__}: {err}") from None
    return stack, ledger


def _open_target(settings, paths: list[Path], stack: ExitStack) -> Any:
    from ingester.places import readable_roots
    from ingester.target import open_target

    try:
        return stack.enter_context(
            open_target(
                tiled_uri=settings.tiled_uri,
                api_key=settings.api_key.get_secret_value() if settings.api_key else None,
                catalog_dir=settings.catalog,
                readable_roots=readable_roots(settings, paths),
            )
        )
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "lock" in reason.lower():
            reason += " (is another ingester or `ingester serve` using this catalog?)"
        raise _fail(f"cannot open the target {settings.tiled_uri or settings.catalog}: {reason}") from None


def _in_processes(pending: list[Path], paths: list[Path], settings, options, view) -> tuple[Any, list[Path]]:
    """With many files for the embedded catalog, ingest them with several writer processes first
    (ingester.workers); return their summary (None if not) and the files still to do in this one."""
    from ingester.places import readable_roots
    from ingester.workers import run_in_processes, writer_processes

    processes = writer_processes(settings, options, len(pending))
    if processes < 2:
        return None, pending
    return run_in_processes(pending, settings, options, processes=processes,
                            readable_roots=readable_roots(settings, paths), on_file=view.file_done)


@contextmanager
def _closing_on_error(stack: ExitStack) -> Iterator[None]:
    try:
        yield
    except BaseException:
        stack.close()
        raise


def _run(files: list[Path], paths: list[Path], settings, options, report: Path | None) -> None:
    from ingester.batch import run_batch, settled_by_ledger
    from ingester.places import target_key
    from ingester.console import BatchView, print_summary, write_report

    stack, ledger = _open_ledger(settings, "ingest-dir")
    with stack:
        settled, pending = settled_by_ledger(files, ledger, options)
        view = BatchView(len(files))
        try:
            earlier, pending = _in_processes(pending, paths, settings, options, view)
            # Nothing new: Tiled (its server code alone takes seconds to import) is not even opened.
            target = _open_target(settings, paths, stack) if pending else None
            summary = run_batch(
                pending, settings, options, client=target.writer_root if target else None, ledger=ledger,
                target=target.description if target else target_key(settings),
                serial_writes=not settings.parallel_writes, on_file=view.file_done, settled=settled,
            )
        finally:
            view.close()
        if earlier is not None:
            summary.files[len(settled):len(settled)] = earlier.files
            summary.claim_seconds += earlier.claim_seconds
            summary.claim_calls += earlier.claim_calls
            summary.seconds += earlier.seconds
    print_summary(summary, dry_run=options.dry_run)
    if summary.claim_calls:
        per_file = summary.claim_seconds / max(len(summary.files), 1)
        typer.echo(f"claims: {summary.claim_calls} ledger calls, {summary.claim_seconds:.3f} s "
                   f"({per_file * 1000:.1f} ms a file)", err=True)
    if report is not None:
        write_report(summary, report)
    raise typer.Exit(summary.exit_code)


@app.command("ingest-dir")
def ingest_dir(
    paths: PathsArg,
    catalog: CatalogOpt = None,
    tiled_uri: TiledUriOpt = None,
    data_root: DataRootOpt = None,
    root_map: RootMapOpt = None,
    server_path: ServerPathOpt = None,
    ledger: LedgerOpt = None,
    jobs: JobsOpt = None,
    dry_run: DryRunOpt = False,
    include_incomplete: IncompleteOpt = None,
    replace: ReplaceOpt = False,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Look at no more than N files.")] = None,
    since: Annotated[
        datetime | None, typer.Option("--since", help="Only files modified since DATE (e.g. 2026-01-31).")
    ] = None,
    report: ReportOpt = None,
    move_done: Annotated[
        Path | None, typer.Option("--move-done", help="Move ingested files into DIR (never overwriting).")
    ] = None,
    parallel_writes: ParallelOpt = None,
    processes: ProcessesOpt = None,
    lease: LeaseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Validate, normalize, resolve and write every complete run found under PATHS; safe to repeat.

    Exit 0 when nothing was refused or failed, 1 otherwise, 2 on bad usage or an unreachable target.
    """
    from ingester.batch import BatchOptions, select_files

    settings = build_settings(
        config, catalog=catalog, tiled_uri=tiled_uri, data_roots=data_root, root_map=root_map,
        server_paths=server_path, ledger=ledger, jobs=jobs, include_incomplete=include_incomplete,
        parallel_writes=parallel_writes, processes=processes, lease=lease,
    )
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise _fail(f"no such file or directory: {', '.join(map(str, missing))}")
    if move_done is not None and dry_run:
        raise _fail("--move-done and --dry-run do not go together")
    # --replace means "look again": a conflict refused earlier is in the ledger as an unchanged file.
    options = BatchOptions(dry_run=dry_run, replace=replace, limit=limit, since=since, move_done=move_done, force=replace)
    _run(list(select_files(paths, options)), paths, settings, options, report)


@app.command()
def retry(
    catalog: CatalogOpt = None,
    tiled_uri: TiledUriOpt = None,
    data_root: DataRootOpt = None,
    root_map: RootMapOpt = None,
    server_path: ServerPathOpt = None,
    ledger: LedgerOpt = None,
    jobs: JobsOpt = None,
    replace: ReplaceOpt = False,
    report: ReportOpt = None,
    parallel_writes: ParallelOpt = None,
    processes: ProcessesOpt = None,
    lease: LeaseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Try again every file the ledger has as refused or failed (e.g. after fixing a data root)."""
    from ingester.batch import BatchOptions
    from ingester.places import ledger_url, target_key
    from ingester.ledger import RETRYABLE, Ledger

    settings = build_settings(
        config, catalog=catalog, tiled_uri=tiled_uri, data_roots=data_root, root_map=root_map,
        server_paths=server_path, ledger=ledger, jobs=jobs, parallel_writes=parallel_writes, processes=processes,
        lease=lease,
    )
    with Ledger.open(ledger_url(settings), target_key(settings)) as book:
        files = [Path(record.path) for record in book.files(list(RETRYABLE))]
    if not files:
        typer.echo("nothing to retry: no refused or failed files in the ledger")
        raise typer.Exit(0)
    options = BatchOptions(replace=replace, force=True)
    _run(files, sorted({f.parent for f in files}), settings, options, report)


@app.command()
def status(
    catalog: CatalogOpt = None,
    tiled_uri: TiledUriOpt = None,
    ledger: LedgerOpt = None,
    failed: Annotated[bool, typer.Option("--failed", help="List each refused or failed file with its reason.")] = False,
    config: ConfigOpt = None,
) -> None:
    """The ledger in short: files by status, the workers and when they were last seen."""
    from ingester.places import ledger_url, target_key
    from ingester.ledger import RETRYABLE, Ledger

    settings = build_settings(config, catalog=catalog, tiled_uri=tiled_uri, ledger=ledger)
    url = ledger_url(settings)
    with Ledger.open(url, target_key(settings)) as book:
        counts = book.summary()
        typer.echo(f"ledger for {target_key(settings)}")
        for name, count in sorted(counts.items()):
            typer.echo(f"  {name:<16} {count:>8}")
        typer.echo(f"  {'total':<16} {sum(counts.values()):>8}")
        for worker in book.workers():
            scanned = worker.last_scan.isoformat(timespec="seconds") if worker.last_scan else "never"
            typer.echo(
                f"worker {worker.worker_id} ({worker.command}): last seen {worker.heartbeat.isoformat(timespec='seconds')}, "
                f"last scan {scanned}, {worker.state}"
            )
        if failed:
            for record in book.files(list(RETRYABLE)):
                typer.echo(f"{record.path}:{record.line or 0}: {record.status}: {record.reason}")
