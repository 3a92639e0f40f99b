"""The command line: a thin layer over functions usable on their own.

Each command builds its settings at the edge, calls the pipeline, and renders what came back:
problems as `path:line: <doc name> <uid or -> : reason`, one summary line per file, or JSON.
Exit codes: 0 all good, 1 something refused/invalid/failed, 2 bad usage or unreachable target.
"""

from __future__ import annotations

import sys
from pathlib import Path
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

PathsArg = Annotated[list[Path], typer.Argument(help="Run files or directories (searched recursively).")]


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


DataRootOpt = Annotated[
    list[Path] | None,
    typer.Option("--data-root", help="Where relative external paths are looked up (repeatable, in order)."),
]
RootMapOpt = Annotated[
    list[str] | None, typer.Option("--root-map", help="OLD=NEW: external paths under OLD are found under NEW.")
]
ServerPathOpt = Annotated[
    list[str] | None, typer.Option("--server-path", help="LOCAL=SERVER: register files as the Tiled server sees them.")
]
CatalogOpt = Annotated[Path | None, typer.Option("--catalog", help="Embedded catalog folder [default: ./ingester-catalog].")]
TiledUriOpt = Annotated[
    str | None, typer.Option("--tiled-uri", help="Write to this Tiled server (API key from TILED_API_KEY).")
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file [default: ./ingester.toml].")]


def _settings(config: Path | None, **flags):
    from ingester.config import load_settings, parse_mapping

    try:
        for name, flag in (("root_map", "--root-map"), ("server_paths", "--server-path")):
            if flags.get(name):
                flags[name] = [parse_mapping(v, flag) for v in flags[name]]
        return load_settings(config, **flags)
    except (ValueError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None


@app.command("ingest-dir")
def ingest_dir(
    paths: PathsArg,
    catalog: CatalogOpt = None,
    tiled_uri: TiledUriOpt = None,
    data_root: DataRootOpt = None,
    root_map: RootMapOpt = None,
    server_path: ServerPathOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Validate, normalize, resolve and write every complete run found under PATHS.

    Exit 0 when nothing was refused or failed, 1 otherwise, 2 on bad usage or an unreachable target.
    """
    from ingester.batch import ingest_paths

    settings = _settings(
        config, catalog=catalog, tiled_uri=tiled_uri, data_roots=data_root, root_map=root_map, server_paths=server_path
    )
    missing = [p for p in paths if not p.exists()]
    if missing:
        typer.echo(f"error: no such file or directory: {', '.join(map(str, missing))}", err=True)
        raise typer.Exit(2)
    summary = ingest_paths(paths, settings, echo=typer.echo)
    raise typer.Exit(summary.exit_code)


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

    settings = _settings(config, catalog=catalog, data_roots=data_root)
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


def main() -> None:
    """Console-script entry point."""
    from ingester.logs import setup_logging

    setup_logging()
    app()
