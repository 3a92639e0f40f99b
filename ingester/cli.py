"""The command line: a thin layer over functions usable on their own.

Each command builds its settings at the edge, calls the pipeline, and renders what came back:
problems as `path:line: <doc name> <uid or -> : reason`, one summary line per file, or JSON.
Exit codes: 0 all good, 1 something refused/invalid/failed, 2 bad usage or unreachable target.
"""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer

from ingester import __version__

__all__ = ["app", "main"]

app = typer.Typer(
    name="ingester",
    help="Ingest Bluesky run documents (JSON Lines) into Tiled.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

from ingester.cli_options import CatalogOpt, ConfigOpt, DataRootOpt, PathsArg, build_settings  # noqa: E402


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


@app.command()
def validate(
    paths: PathsArg,
    json_output: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="A half-written last line is an error, not 'incomplete'.")
    ] = False,
) -> None:
    """Check run files: every document against its schema, every run as a whole.

    Exit 0 when every run is complete and valid, 1 otherwise.
    """
    from ingester.discover import find_run_files
    from ingester.problems import Problem
    from ingester.validate import FileReport, validate_file

    reports: list[FileReport] = []
    for path in find_run_files(paths):
        if not path.exists():
            report = FileReport(path=path, status="invalid")
            report.problems.append(Problem(str(path), None, "no such file or directory"))
        else:
            report = validate_file(path, strict=strict)
        reports.append(report)
        if not json_output:
            _print_file_report(report)
    if json_output:
        sys.stdout.buffer.write(orjson.dumps([r.to_dict() for r in reports], option=orjson.OPT_INDENT_2))
        sys.stdout.buffer.write(b"\n")
    if not reports:
        typer.echo("no run files found", err=True)
        raise typer.Exit(1)
    raise typer.Exit(0 if all(r.status == "ok" for r in reports) else 1)


@app.command()
def serve(
    catalog: CatalogOpt = None,
    port: Annotated[int, typer.Option("--port", help="TCP port to listen on.")] = 8000,
    host: Annotated[str, typer.Option("--host", help="Address to bind (loopback by default).")] = "127.0.0.1",
    data_root: DataRootOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the embedded catalog with Tiled, for any Tiled client (bluesky-tiled-plugins' included).

    Anyone may read; writing needs the API key from TILED_API_KEY (without it the catalog is read-only).
    Registered files are read from the data roots and the folders earlier ingests used.
    """
    from ingester.serve import serve_catalog
    from ingester.target import CatalogLayout

    settings = build_settings(config, catalog=catalog, data_roots=data_root)
    layout = CatalogLayout(settings.catalog.absolute())
    if not layout.exists():
        typer.echo(f"error: no catalog in {layout.root} (run `ingester ingest-dir` first)", err=True)
        raise typer.Exit(2)
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    roots = [*settings.data_roots, *(new for _, new in settings.root_map)]
    typer.echo(f"serving {layout.root} at http://{host}:{port} ({'read/write' if api_key else 'read-only'})", err=True)
    try:
        serve_catalog(layout.root, port, host=host, readable_roots=roots, api_key=api_key, log_level="warning")
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None


def _print_file_report(report) -> None:
    for problem in report.all_problems():
        typer.echo(str(problem))
    for run in report.runs:
        if run.more_problems:
            typer.echo(f"{report.path}: run {run.uid or '-'}: {run.more_problems} more problems not shown")
    for run in report.runs:
        if run.status == "incomplete" and run.uid is not None and report.truncated is None:
            typer.echo(f"{report.path}:{run.line}: start {run.uid} : incomplete: run has no stop document")
    if report.truncated is not None:
        typer.echo(str(report.truncated))
    runs = len([r for r in report.runs if r.uid is not None])
    typer.echo(f"{report.path}: {report.status} ({runs} run{'s' if runs != 1 else ''})")


import ingester.cli_ingest  # noqa: E402,F401 - registers ingest-dir, retry, status
import ingester.cli_watch  # noqa: E402,F401 - registers watch


def main() -> None:
    """Console-script entry point."""
    from ingester.logs import setup_logging

    setup_logging()
    app()
