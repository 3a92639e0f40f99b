"""Opening what a command works on — the ledger and the target — or exiting 2 with one line saying why.

Shared by `ingest-dir`, `retry`, `status` and `watch` (`watch --serve`: `open_served_target`). The
line names the target without any secret and never holds the API key.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from ingester.config import Settings, ledger_url, target_key
from ingester.logs import scrub
from ingester.problems import TargetUnavailable

__all__ = ["fail", "open_ledger", "open_target", "open_served_target", "ledger_errors"]


def fail(message: str) -> typer.Exit:
    """Say `error: message` on stderr; the exit (code 2) for the caller to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def open_ledger(settings: Settings, command: str, *, read_only: bool = False) -> Any:
    """The ledger (a context manager closing it), or exit 2. `read_only`: see `Ledger.open`."""
    from ingester.ledger.store import Ledger

    try:
        return Ledger.open(ledger_url(settings), target_key(settings), command=command, read_only=read_only)
    except Exception as err:
        raise fail(f"cannot open the ledger {_where(settings)}: {_one_line(err)}") from None


@contextmanager
def ledger_errors(settings: Settings) -> Iterator[None]:
    """Inside: a ledger that fails (corrupt, locked too long, gone) ends the command with exit 2."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as err:
        raise fail(f"the ledger {_where(settings)} failed: {_one_line(err)}") from None


def _where(settings: Settings) -> str:
    return scrub(ledger_url(settings).removeprefix("sqlite:///"))


def _one_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip()
    first = text.splitlines()[0] if text else ""
    return scrub(f"{type(err).__name__}: {first}" if first else type(err).__name__)


def open_target(settings: Settings, readable_roots: Iterable[Path]) -> Any:
    """The target (a context manager closing it): the Tiled server, or the embedded catalog; or exit 2."""
    from ingester.target.targets import open_target as open_it

    try:
        return open_it(
            tiled_uri=settings.tiled_uri,
            api_key=settings.api_key.get_secret_value() if settings.api_key else None,
            catalog_dir=settings.catalog,
            readable_roots=readable_roots,
        )
    except TargetUnavailable as err:
        raise fail(str(err)) from None


def open_served_target(settings: Settings, readable_roots: Iterable[Path], *, host: str, port: int) -> Any:
    """The embedded catalog, served on `host:port` while it is written (a context manager closing both);
    or exit 2. Clients need the API key from the settings when there is one, and only read."""
    from ingester.target.serve import open_served

    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    try:
        return open_served(settings.catalog, readable_roots, host=host, port=port, api_key=api_key)
    except (TargetUnavailable, ValueError) as err:
        raise fail(scrub(str(err))) from None
