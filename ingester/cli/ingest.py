"""The commands that ingest: `ingest-dir` and `retry`.

Thin: build settings and options, open the target and the ledger, hand the files to a batch, show
progress and the summary. Exit codes: 0 all ingested or already present (incomplete files only
reported), 1 anything refused or failed, 2 bad usage or an unreachable target.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ingester.cli.opening import fail, ledger_errors, open_ledger
from ingester.cli.options import (
    CatalogOpt,
    ConfigOpt,
    DataRootOpt,
    DryRunOpt,
    IncompleteOpt,
    JobsOpt,
    LeaseOpt,
    LedgerOpt,
    LeftoverAfterOpt,
    OnMissingFileOpt,
    ParallelOpt,
    PathsArg,
    ProcessesOpt,
    ReplaceOpt,
    ReportOpt,
    RootMapOpt,
    ServerPathOpt,
    TiledUriOpt,
    build_settings,
)
from ingester.config import readable_roots
from ingester.problems import TargetUnavailable

__all__ = ["ingest_dir", "retry"]


def _in_processes(pending: list[Path], roots: list[Path], settings, options, view, stop) -> tuple[Any, list[Path]]:
    """With many files for the embedded catalog, ingest them with several writer processes first
    (ingester.ingest.workers); return their summary (None if not) and the files still to do in this one."""
    from ingester.ingest.workers import run_in_processes, writer_processes

    processes = writer_processes(settings, options, len(pending))
    if processes < 2:
        return None, pending
    return run_in_processes(
        pending, settings, options, processes=processes, readable_roots=roots, on_file=view.file_done, stop=stop
    )


def _run(files: list[Path], paths: list[Path], settings, options, report: Path | None) -> None:
    from ingester.cli.console import BatchView, print_summary, write_report
    from ingester.cli.signals import install_signal_handlers
    from ingester.ingest.batch import settled_by_ledger
    from ingester.ingest.packs import pack_roots

    roots = [*readable_roots(settings, paths), *pack_roots(files)]
    stop = threading.Event()
    signals = install_signal_handlers(stop, abort_on_second=True)
    try:
        with open_ledger(settings, "ingest-dir") as ledger, ledger_errors(settings):
            settled, pending = settled_by_ledger(files, ledger, options)
            view = BatchView(len(files))
            try:
                earlier, pending = _in_processes(pending, roots, settings, options, view, stop)
                summary = _ingest(pending, settled, ledger, settings, options, roots, view, stop)
            finally:
                view.close()
            if earlier is not None:
                summary.merge(earlier, at=len(settled))
    finally:
        signals.restore()
    summary.signal = signals.received
    print_summary(summary, dry_run=options.dry_run)
    if summary.claim_calls:
        per_file = summary.claim_seconds / max(len(summary.files), 1)
        typer.echo(f"claims: {summary.claim_calls} ledger calls, {summary.claim_seconds:.3f} s "
                   f"({per_file * 1000:.1f} ms a file)", err=True)  # fmt: skip
    if report is not None:
        write_report(summary, report)
    raise typer.Exit(summary.exit_code)


def _ingest(pending: list[Path], settled: list, ledger, settings, options, roots: list[Path], view, stop) -> Any:
    """The files left to this process, through one `FileIngester`; the summary, `settled` first."""
    from ingester.ingest.batch import ingest_pending

    try:
        return ingest_pending(
            pending, ledger, settings, options, readable_roots=roots, on_file=view.file_done, settled=settled,
            stop=stop,
        )  # fmt: skip
    except TargetUnavailable as err:
        raise fail(str(err)) from None


def ingest_dir(  # noqa: PLR0913 - one parameter a command-line option
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
    on_missing_file: OnMissingFileOpt = None,
    leftover_after: LeftoverAfterOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Validate, normalize, resolve and write every complete run found under PATHS; safe to repeat.

    Exit 0 when nothing was refused or failed, 1 otherwise, 2 on bad usage or an unreachable target.
    """
    from ingester.ingest.batch import select_files
    from ingester.ingest.files import BatchOptions

    settings = build_settings(
        config,
        catalog=catalog,
        tiled_uri=tiled_uri,
        data_roots=data_root,
        root_map=root_map,
        server_paths=server_path,
        ledger=ledger,
        jobs=jobs,
        include_incomplete=include_incomplete,
        parallel_writes=parallel_writes,
        processes=processes,
        lease=lease,
        on_missing_file=on_missing_file,
        leftover_after=leftover_after,
    )
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise fail(f"no such file or directory: {', '.join(map(str, missing))}")
    if move_done is not None and dry_run:
        raise fail("--move-done and --dry-run do not go together")
    # --replace means "look again": a conflict refused earlier is in the ledger as an unchanged file.
    options = BatchOptions(
        dry_run=dry_run, replace=replace, limit=limit, since=since, move_done=move_done, force=replace
    )
    _run(list(select_files(paths, options)), paths, settings, options, report)


def retry(  # noqa: PLR0913 - one parameter a command-line option
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
    on_missing_file: OnMissingFileOpt = None,
    leftover_after: LeftoverAfterOpt = None,
    refused: Annotated[
        bool, typer.Option("--refused", help="Also try refused files again (their content has not changed).")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Try again every file the ledger has as failed; refused ones too with --refused, or when this
    command is given --data-root, --root-map, --server-path or --on-missing-file (how external files
    are found changed, which may fix a refusal)."""
    from ingester.ingest.files import BatchOptions
    from ingester.status import Outcome

    settings = build_settings(
        config,
        catalog=catalog,
        tiled_uri=tiled_uri,
        data_roots=data_root,
        root_map=root_map,
        server_paths=server_path,
        ledger=ledger,
        jobs=jobs,
        parallel_writes=parallel_writes,
        processes=processes,
        lease=lease,
        on_missing_file=on_missing_file,
        leftover_after=leftover_after,
    )
    resolution_changed = bool(data_root or root_map or server_path or on_missing_file)
    wanted = [Outcome.FAILED, Outcome.REFUSED] if refused or resolution_changed else [Outcome.FAILED]
    with open_ledger(settings, "retry") as book, ledger_errors(settings):
        records = book.files([Outcome.FAILED, Outcome.REFUSED])
    files = [Path(record.path) for record in records if record.status in wanted]
    left = len(records) - len(files)
    if left:
        typer.echo(f"{left} refused files not tried again (their content did not change): --refused tries them")
    if not files:
        typer.echo("nothing to retry: no failed files in the ledger" + ("" if left else " (nor refused ones)"))
        raise typer.Exit(0)
    options = BatchOptions(replace=replace, force=True)
    _run(files, sorted({f.parent for f in files}), settings, options, report)
