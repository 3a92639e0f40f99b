"""What the operator sees of a batch: a progress bar on a terminal, plain log lines otherwise, problem
lines as `path:line: <doc> <uid> : reason`, a summary table by status, and the JSON report.

Rendering only: nothing here decides what happens to a file.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TextIO

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ingester.ingest.outcomes import FileOutcome, Summary
from ingester.logs import logger
from ingester.status import Outcome

__all__ = ["BatchView", "write_report", "print_summary"]

_SHOWN_PROBLEMS = 5


class BatchView:
    """Shows progress while files finish. On a terminal a rich bar (files, runs, events/s); when
    not, one log line per file that was not skipped. Problems always go to stderr as they come."""

    def __init__(self, total: int, *, stream: TextIO | None = None, quiet: bool = False):
        self.console = Console(file=stream or sys.stderr)
        self.quiet = quiet
        self.total = total
        self.runs = 0
        self.events = 0
        self._progress: Progress | None = None
        if self.console.is_terminal and not quiet:
            self._progress = Progress(
                TextColumn("[bold]ingest"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("files · {task.fields[runs]} runs · {task.fields[rate]:.0f} events/s"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._task = self._progress.add_task("ingest", total=total, runs=0, rate=0.0)
            self._progress.start()

    def file_done(self, outcome: FileOutcome) -> None:
        self.runs += len([r for r in outcome.runs if r.uid])
        self.events += outcome.events
        if outcome.status in (Outcome.REFUSED, Outcome.FAILED):
            problems = [str(p) for run in outcome.runs for p in run.problems] or [
                f"{outcome.path}:{outcome.line or 0}: - - : {outcome.reason}"
            ]
            for line in problems[:_SHOWN_PROBLEMS]:
                self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        if self._progress is not None:
            task = self._progress.tasks[0]
            elapsed = task.elapsed or 1e-9
            self._progress.update(self._task, advance=1, runs=self.runs, rate=self.events / elapsed)
        elif not self.quiet and outcome.status not in (Outcome.UNCHANGED, Outcome.INTERRUPTED):
            logger.info("{} {} ({} runs, {:.2f} s)", outcome.status, outcome.path, len(outcome.runs), outcome.seconds)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def print_summary(summary: Summary, *, stream: TextIO | None = None, dry_run: bool = False) -> None:
    """A table of files and runs by status, then one line saying where the runs went."""
    console = Console(file=stream or sys.stdout)
    files, runs = summary.counts, summary.run_counts
    table = Table(title="dry run: nothing written" if dry_run else None, show_edge=False, pad_edge=False)
    table.add_column("status")
    table.add_column("files", justify="right")
    table.add_column("runs", justify="right")
    for status in sorted(set(files) | set(runs)):
        table.add_row(status, str(files.get(status, 0)), str(runs.get(status, 0)))
    console.print(table)
    earlier = [f for f in summary.files if f.status == Outcome.UNCHANGED and f.still_wrong]
    if earlier:
        console.print(
            f"{len(earlier)} unchanged files were refused or failed before: `ingester retry` tries the failed "
            "ones again (the refused ones with --refused)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    partial = [run for run in summary.runs if run.missing]
    if partial:
        console.print(
            f"{len(partial)} runs ingested without the keys whose external files are missing (listed in the report)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    _print_stop(summary, console)
    rate = len(summary.files) / summary.seconds if summary.seconds else 0.0
    console.print(
        f"{len(summary.files)} files, {len(summary.runs)} runs in {summary.seconds:.1f} s "
        f"({rate:.1f} files/s) -> {summary.target}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _print_stop(summary: Summary, console: Console) -> None:
    """Why the pass ended early, and what was left (stderr: it is an error)."""
    left = summary.counts[Outcome.INTERRUPTED]
    if summary.signal is not None:
        name = signal.Signals(summary.signal).name
        message = f"stopped by {name}: {left} files not looked at (or only in part); run the command again to go on"
    elif summary.target_down is not None:
        message = f"error: target unreachable: {summary.target_down}; {left} files not looked at"
    else:
        return
    Console(file=sys.stderr).print(message, markup=False, highlight=False, soft_wrap=True)


def write_report(summary: Summary, path: Path) -> None:
    """The JSON report: one entry per file (`path`, `status`, `runs` [uids], `reason`, `line`)."""
    document = {
        "target": summary.target,
        "seconds": round(summary.seconds, 3),
        "counts": {str(status): count for status, count in summary.counts.items()},
        "files": [outcome.to_dict() for outcome in summary.files],
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    tmp.replace(path)
