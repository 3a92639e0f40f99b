"""Running the `ingester` command in-process, and reading back what it left in the catalog and the ledger."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from ingester.cli.app import app
from ingester.ledger.store import Ledger

__all__ = ["runner", "ingest", "catalog_uids", "ledger_rows", "ingester_command", "start_ingester", "run_ingester"]

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


def ingester_command(*args: str | Path) -> list[str]:
    """`python -m ingester ARGS` as a command line for a subprocess."""
    import sys

    return [sys.executable, "-m", "ingester", *map(str, args)]


def start_ingester(log: Path, *args: str | Path, env: dict | None = None, own_group: bool = False):
    """`ingester ARGS` started in the background, its output in `log`; the `Popen`. `own_group`: in a
    process group of its own, as a terminal's job is (a Ctrl-C there reaches every process of it)."""
    import os
    import subprocess

    handle = open(log, "w")  # noqa: SIM115 - the child writes to it; closed with the test's folder
    return subprocess.Popen(
        ingester_command(*args), env={**os.environ, **(env or {})}, stdout=handle, stderr=subprocess.STDOUT,
        start_new_session=own_group,
    )  # fmt: skip


def run_ingester(*args: str | Path, env: dict | None = None, timeout: float = 300):
    """`ingester ARGS` run to its end in a subprocess: the `CompletedProcess` (text output)."""
    import os
    import subprocess

    return subprocess.run(
        ingester_command(*args), env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )
