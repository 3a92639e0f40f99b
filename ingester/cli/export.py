"""The `export` command: runs from a catalog into a databroker-pack folder another machine ingests.

Thin: build settings, open the target, choose the runs, hand them to the exporter, show progress
(a rich bar on a terminal, one log line a run otherwise) and a summary table. Exit codes as
`ingest-dir`: 0 every run exported or already there, 1 a run refused or failed, 2 bad usage or a
target that cannot be opened, 130/143 stopped by SIGINT/SIGTERM.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ingester.cli.opening import fail, open_target
from ingester.cli.options import CatalogOpt, ConfigOpt, SourceTiledUriOpt, build_settings
from ingester.status import Outcome

__all__ = ["export"]


class PackFormat(StrEnum):
    jsonl = "jsonl"
    msgpack = "msgpack"


def _uids(uid: list[str] | None, uid_file: Path | None) -> list[str]:
    wanted = list(uid or [])
    if uid_file is not None:
        try:
            text = uid_file.read_text()
        except OSError as err:
            raise fail(f"cannot read {uid_file}: {err.strerror or err}") from None
        wanted += [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return wanted


def export(  # noqa: PLR0913 - one parameter a command-line option
    dest: Annotated[Path, typer.Argument(help="The pack folder (created, or completed if it holds an export).")],
    catalog: CatalogOpt = None,
    tiled_uri: SourceTiledUriOpt = None,
    uid: Annotated[list[str] | None, typer.Option("--uid", help="Export this run (repeatable).")] = None,
    uid_file: Annotated[Path | None, typer.Option("--uid-file", help="Export the runs listed, one uid a line.")] = None,
    since: Annotated[datetime | None, typer.Option("--since", help="Only runs started at or after DATE.")] = None,
    until: Annotated[datetime | None, typer.Option("--until", help="Only runs started before DATE.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Export no more than N runs.")] = None,
    format: Annotated[
        PackFormat, typer.Option("--format", help="Documents as suitcase-jsonl or suitcase-msgpack.")
    ] = PackFormat.jsonl,
    copy_external: Annotated[
        bool,
        typer.Option("--copy-external/--no-copy-external", help="Copy external files into the pack, or list them."),
    ] = True,
    config: ConfigOpt = None,
) -> None:
    """Export runs from the catalog into DEST, a databroker-pack folder (documents, external files,
    manifests, SHA256SUMS, catalog.yml last); re-running skips runs already exported and verified.

    Exit 0 when every run was exported, 1 when one was refused or failed, 2 on bad usage or an
    unreachable target.
    """
    from ingester.export.exporter import MissingRun, select_runs
    from ingester.export.pack import Pack

    settings = build_settings(config, catalog=catalog, tiled_uri=tiled_uri)
    if not settings.tiled_uri and not (Path(settings.catalog) / "catalog.db").is_file():
        raise fail(f"no catalog in {settings.catalog}")
    wanted = _uids(uid, uid_file)
    if dest.exists() and not dest.is_dir():
        raise fail(f"{dest} is not a folder")
    pack = Pack(dest, str(format), copy_external=copy_external)
    with open_target(settings, []) as target:
        try:
            uids = select_runs(target.root, wanted, since=since, until=until, limit=limit)
        except MissingRun as err:
            raise fail(str(err)) from None
        counts = _run(target, uids, pack)
    raise typer.Exit(_exit_code(counts))


def _run(target, uids: list[str], pack) -> Counter:
    from ingester.cli.signals import install_signal_handlers
    from ingester.export.exporter import export_runs

    began = time.monotonic()
    stop = threading.Event()
    signals = install_signal_handlers(stop)
    view = _ExportView(len(uids))
    try:
        # Embedded, `writer_root` reads runs through the catalog adapter, without HTTP: see export_runs.
        outcomes = list(export_runs(target.writer_root, uids, pack, on_run=view.run_done, stop=stop))
    finally:
        view.close()
        signals.restore()
    counts = Counter(str(o.status) for o in outcomes)
    _print_summary(counts, outcomes, pack, target.description, time.monotonic() - began)
    if signals.received is not None:
        typer.echo(
            f"stopped: {counts[Outcome.INTERRUPTED]} runs not exported; run the command again to go on", err=True
        )
        raise typer.Exit(128 + signals.received)
    return counts


def _exit_code(counts: Counter) -> int:
    return 1 if counts[Outcome.REFUSED] or counts[Outcome.FAILED] else 0


class _ExportView:
    """A rich bar on a terminal (runs, events/s), one log line a run otherwise; problems on stderr."""

    def __init__(self, total: int):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(file=sys.stderr)
        self.events = 0
        self.progress = None
        if self.console.is_terminal:
            self.progress = Progress(
                TextColumn("[bold]export"), BarColumn(), MofNCompleteColumn(),
                TextColumn("runs · {task.fields[rate]:.0f} events/s"), TimeElapsedColumn(),
                console=self.console, transient=True,
            )  # fmt: skip
            self.task = self.progress.add_task("export", total=total, rate=0.0)
            self.progress.start()

    def run_done(self, outcome) -> None:
        from ingester.logs import logger

        self.events += outcome.events
        if outcome.status in (Outcome.REFUSED, Outcome.FAILED) or outcome.reason:
            self.console.print(f"{outcome.uid}: {outcome.status}: {outcome.reason}", markup=False, soft_wrap=True)
        if self.progress is not None:
            elapsed = self.progress.tasks[0].elapsed or 1e-9
            self.progress.update(self.task, advance=1, rate=self.events / elapsed)
        elif outcome.status != Outcome.INTERRUPTED:
            logger.info("{} {} ({} events, {} files, {:.2f} s)", outcome.status, outcome.uid, outcome.events,
                        outcome.files, outcome.seconds)  # fmt: skip

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _print_summary(counts: Counter, outcomes: list, pack, source: str, seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("status")
    table.add_column("runs", justify="right")
    for status in sorted(counts):
        table.add_row(status, str(counts[status]))
    console.print(table)
    events = sum(o.events for o in outcomes)
    console.print(
        f"{len(outcomes)} runs in {seconds:.1f} s ({events} events): {source} -> {pack.root}",
        markup=False, highlight=False, soft_wrap=True,
    )  # fmt: skip
