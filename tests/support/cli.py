"""Running the `ingester` command in-process, and reading back what it left in the catalog and the ledger."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from ingester.cli.app import app
from ingester.ledger.store import Ledger

__all__ = ["runner", "ingest", "catalog_uids", "ledger_rows"]

runner = CliRunner()


def ingest(*args: str):
    """`ingester ingest-dir ARGS...`, its result (output, exit code)."""
    return runner.invoke(app, ["ingest-dir", *map(str, args)], catch_exceptions=False)


def catalog_uids(catalog: Path) -> set[str]:
    from ingester.target.targets import open_embedded

    with open_embedded(catalog) as target:
        return set(target.root)


def ledger_rows(catalog: Path) -> dict[str, tuple]:
    """The ledger of an embedded catalog: path -> (status, hash, attempts, last attempt, runs)."""
    with Ledger.open(f"sqlite:///{catalog / 'ledger.db'}", str(catalog.absolute())) as book:
        return {r.path: (r.status, r.hash, r.attempts, r.last_attempt, r.runs) for r in book.files()}
