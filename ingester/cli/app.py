"""The `ingester` command: the Typer app, with every command registered here from the module that holds it.

Command modules hold plain functions (their options declared with `Annotated`) and never import this
module, so the arrows point one way: `app` -> commands -> the pipeline. Each command builds its
settings at the edge, calls the pipeline, and renders what came back. Exit codes: 0 all good, 1
something refused/invalid/failed, 2 bad usage or an unreachable target.
"""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer

from ingester import __version__
from ingester.cli.export import export
from ingester.cli.ingest import ingest_dir, retry
from ingester.cli.serve import serve
from ingester.cli.status import status
from ingester.cli.validate import validate
from ingester.cli.watch import watch

__all__ = ["app", "main"]

app = typer.Typer(
    name="ingester",
    help="Ingest Bluesky run documents (JSON Lines) into Tiled.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bluesky-ingester {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Ingest Bluesky run documents (JSON Lines) into Tiled."""


app.command()(validate)
app.command("ingest-dir")(ingest_dir)
app.command()(retry)
app.command()(status)
app.command()(watch)
app.command()(serve)
app.command()(export)


def main() -> None:
    """Console-script entry point: the command, then the end of the process.

    Once a command has returned (its ledger and target closed, its report written), the exit handlers
    run as at any exit, the output is flushed, and the process ends without tearing down the ~900
    modules a write imports (tiled, SQLAlchemy, pyarrow, numpy): that teardown does nothing for the
    user and costs ~0.3 s, a fifth of a small run's whole process.
    """
    from ingester.logs import setup_logging

    setup_logging()
    try:
        app()
    except SystemExit as done:
        _end_process(done.code)
    _end_process(0)


def _end_process(code: object) -> NoReturn:
    import atexit
    import os
    import sys

    if code is not None and not isinstance(code, int):  # sys.exit("message"), as the interpreter treats it
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()  # what the interpreter runs at exit: logging, multiprocessing, temporary files
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`) or a closed stream: nothing more to say
            pass
    os._exit(code or 0)
