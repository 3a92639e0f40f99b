"""`bench.py export`: `ingester export` of a catalog into a pack, then `ingest-dir PACK` into a fresh
catalog, printed beside `ingest-dir` of the same source files.

    python scripts/bench.py export [--count 1000] [--events 100000] [--jobs 1]

Two cases: `--count` small runs (10 events x 3 columns + a 2-row baseline each) and one scalar run of
`--events` events x 8 columns. Each step is `python -m ingester ...` in a process of its own, timed
whole (start-up included), into the embedded catalog: ingest-dir of the source files into catalog A,
export of A into a pack (jsonl, nothing external), ingest-dir of the pack into catalog B. The issue's
target: export of a run costs no more than its ingest.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import bench_data
from bench_many import run_ingester, summary_seconds

__all__ = ["add_export_parser", "bench_export"]


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export then re-import, beside ingest-dir of the same files")
    p.add_argument("--count", type=int, default=1000, help="number of small runs")
    p.add_argument("--events", type=int, default=100_000, help="events of the scalar run")
    p.add_argument("--jobs", type=int, default=1, help="ingest-dir --jobs (and one process: --processes 0)")
    p.set_defaults(func=bench_export)


def _step(*args: str) -> tuple[float, float | None]:
    """One command as a user runs it: its wall-clock seconds, and the time its summary line reports."""
    seconds, done = run_ingester(*args)
    if done.returncode != 0:
        raise SystemExit(
            f"`ingester {' '.join(args)}` exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    return seconds, summary_seconds(done.stdout)


def one_case(label: str, source: Path, tmp: Path, jobs: int) -> tuple:
    writers = ["--jobs", str(jobs), "--processes", "0"]
    ingest = _step("ingest-dir", str(source), "--catalog", str(tmp / "a"), *writers)
    export = _step("export", str(tmp / "pack"), "--catalog", str(tmp / "a"))
    again = _step("ingest-dir", str(tmp / "pack"), "--catalog", str(tmp / "b"), *writers)
    return label, ingest, export, again


def bench_export(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small, scalar = tmp / "small" / "runs", tmp / "scalar" / "runs"
        bench_data.write_small_runs(small, args.count)
        scalar.mkdir(parents=True)
        bench_data.write_scalar_run(scalar / "scalar.jsonl", args.events)
        rows = [
            one_case(f"{args.count} small runs", small, small.parent, args.jobs),
            one_case(f"scalar {args.events} events x 8", scalar, scalar.parent, args.jobs),
        ]
    print(f"embedded catalog, one process each (ingest-dir --jobs {args.jobs} --processes 0); wall s (batch s)")
    print(f"{'case':<28} {'ingest-dir':>16} {'export':>16} {'re-import':>16} {'export/ingest':>14}")
    for label, ingest, export, again in rows:
        cells = [
            f"{wall:.1f} ({batch if batch is not None else float('nan'):.1f})"
            for wall, batch in (ingest, export, again)
        ]
        print(f"{label:<28} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16} {export[0] / ingest[0]:>13.2f}x")
    print("target: export/ingest <= 1.00")
