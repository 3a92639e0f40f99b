"""`ingester status`: the ledger in short, by status, and the workers it knows."""

from __future__ import annotations

from typing import Annotated

import typer

from ingester.cli.opening import ledger_errors, open_ledger
from ingester.cli.options import CatalogOpt, ConfigOpt, LedgerOpt, TiledUriOpt, build_settings

__all__ = ["status"]


def status(
    catalog: CatalogOpt = None,
    tiled_uri: TiledUriOpt = None,
    ledger: LedgerOpt = None,
    failed: Annotated[bool, typer.Option("--failed", help="List each refused or failed file with its reason.")] = False,
    config: ConfigOpt = None,
) -> None:
    """The ledger in short: files by status, the workers and when they were last seen.

    Only reads: it never waits for another ingester's write. Exit 2 if the ledger cannot be read."""
    from ingester.config import target_key
    from ingester.logs import scrub
    from ingester.status import MISSING_FILES, RETRYABLE, Outcome

    settings = build_settings(config, catalog=catalog, tiled_uri=tiled_uri, ledger=ledger)
    with open_ledger(settings, "status", read_only=True) as book, ledger_errors(settings):
        counts = book.summary()
        typer.echo(f"ledger for {target_key(settings)}")
        for name, count in sorted(counts.items()):
            typer.echo(f"  {name:<16} {count:>8}")
        typer.echo(f"  {'total':<16} {sum(counts.values()):>8}")
        partial = book.count_runs(Outcome.INGESTED, MISSING_FILES)
        if partial:
            typer.echo(f"runs ingested without the keys whose external files are missing: {partial}")
        for worker in book.workers():
            scanned = worker.last_scan.isoformat(timespec="seconds") if worker.last_scan else "never"
            typer.echo(
                f"worker {worker.worker_id} ({worker.command}): last seen {worker.heartbeat.isoformat(timespec='seconds')}, "
                f"last scan {scanned}, {worker.state}"
            )
        if failed:
            for record in book.files(list(RETRYABLE)):
                typer.echo(
                    scrub(f"{record.path}:{_position(record.path, record.line)}: {record.status}: {record.reason}")
                )


def _position(path: str, line: int | None) -> str:
    """Where in the file the ledger's problem is, counted as the file's format counts: the ledger
    keeps a number, which is a document's for a msgpack file (read from its first byte) and a line's
    for any other."""
    from ingester.read.msgpackio import is_msgpack
    from ingester.runs import DocumentNumber

    if not line:
        return "0"
    try:
        with open(path, "rb") as fh:
            head = fh.read(1)
    except OSError:
        return str(line)  # moved or deleted since: the number as recorded
    return str(DocumentNumber(line)) if is_msgpack(head) else str(line)
