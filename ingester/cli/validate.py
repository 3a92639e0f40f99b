"""`ingester validate`: check run files and say what is wrong with them, line by line.

Given a databroker-pack folder, it checks the pack's document files, and reports each file the
pack's manifests list that the pack does not hold.
"""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer

from ingester.cli.options import PathsArg
from ingester.status import Verdict

__all__ = ["validate"]


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
    from ingester.read.discover import find_run_files
    from ingester.read.pack import pack_of
    from ingester.read.validate import FileReport, validate_file

    reports: list[FileReport] = []
    packs = {}
    for path in find_run_files(paths):
        if (pack := pack_of(path)) is not None:
            packs[pack.folder] = pack
        if not path.exists():
            report = _missing(path, "no such file or directory", pack)
        else:
            report = validate_file(path, strict=strict)
        reports.append(report)
        if not json_output:
            print_file_report(report)
    for report in _pack_gaps(packs.values(), {r.path for r in reports}):
        reports.append(report)
        if not json_output:
            print_file_report(report)
    if json_output:
        sys.stdout.buffer.write(orjson.dumps([r.to_dict() for r in reports], option=orjson.OPT_INDENT_2))
        sys.stdout.buffer.write(b"\n")
    if not reports:
        typer.echo("no run files found", err=True)
        raise typer.Exit(1)
    raise typer.Exit(0 if all(r.status == Verdict.OK for r in reports) else 1)


def _missing(path, reason: str, pack=None):
    """The report of a file that is not there; in a pack, saying which manifest lists it."""
    from ingester.problems import Problem
    from ingester.read.pack import missing_files
    from ingester.read.validate import FileReport

    if pack is not None:
        reason = next((f"listed in {m} but not in the pack" for p, m in missing_files(pack) if p == path), reason)
    report = FileReport(path=path, status=Verdict.INVALID)
    report.problems.append(Problem(str(path), None, reason))
    return report


def _pack_gaps(packs, reported: set) -> list:
    """A report for each file a pack's manifests list that the pack does not hold (documents are reported already)."""
    from ingester.read.pack import missing_files

    gaps = []
    for pack in packs:
        gaps += [
            _missing(path, f"listed in {m} but not in the pack")
            for path, m in missing_files(pack)
            if path not in reported
        ]
    return gaps


def print_file_report(report) -> None:
    for problem in report.all_problems():
        typer.echo(str(problem))
    for run in report.runs:
        if run.more_problems:
            typer.echo(f"{report.path}: run {run.uid or '-'}: {run.more_problems} more problems not shown")
    for run in report.runs:
        if run.status == Verdict.INCOMPLETE and run.uid is not None and report.truncated is None:
            typer.echo(f"{report.path}:{run.line}: start {run.uid} : incomplete: run has no stop document")
    if report.truncated is not None:
        typer.echo(str(report.truncated))
    runs = len([r for r in report.runs if r.uid is not None])
    typer.echo(f"{report.path}: {report.status} ({runs} run{'s' if runs != 1 else ''})")
