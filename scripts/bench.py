"""Benchmarks: our code side by side with the reference, in one invocation, printing ratios.

    python scripts/bench.py validate [--events N]   # ingester validate vs a bare orjson loop
    python scripts/bench.py write [--events N] [--datums N]   # our writer vs TiledWriter (embedded catalogs)

Each measured step runs in a child process so that its peak memory (ru_maxrss) is its own.
Timings are wall-clock seconds on this machine; the ratios are what the issues set targets on.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_data  # noqa: E402


def measure(code: str, *args: str) -> dict:
    """Run `code` in a fresh interpreter; return its wall time (as it reports) and peak RSS in MB."""
    wrapper = (
        "import resource, sys, time, json\n"
        "t0 = time.perf_counter()\n"
        f"{code}\n"
        "elapsed = time.perf_counter() - t0\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print('BENCH ' + json.dumps({'seconds': elapsed, 'peak_mb': rss}))\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *args], capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("BENCH ")]
    if not lines:
        raise SystemExit(f"benchmark step failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return json.loads(lines[-1][6:])


ORJSON_LOOP = """
import orjson
with open(sys.argv[1], 'rb') as fh:
    for line in fh:
        orjson.loads(line)
"""

VALIDATE = """
from ingester.validate import validate_file
report = validate_file(sys.argv[1])
assert report.status == 'ok', [str(p) for p in report.all_problems()][:5]
"""


def bench_validate(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for events in (args.events // 10, args.events):
            path = Path(tmp) / f"scalar-{events}.jsonl"
            bench_data.write_scalar_run(path, events)
            base = measure(ORJSON_LOOP, str(path))
            ours = measure(VALIDATE, str(path))
            rows.append((events, path.stat().st_size, base, ours))
        print(f"{'events':>8} {'MB':>6} {'orjson s':>9} {'validate s':>10} {'ratio':>6} {'peak MB':>8}")
        for events, size, base, ours in rows:
            ratio = ours["seconds"] / base["seconds"]
            print(f"{events:>8} {size / 1e6:>6.1f} {base['seconds']:>9.3f} {ours['seconds']:>10.3f} {ratio:>6.2f} {ours['peak_mb']:>8.1f}")
        small, large = rows[0][3]["peak_mb"], rows[1][3]["peak_mb"]
        print(f"validate/orjson time ratio at {args.events} events: {rows[1][3]['seconds'] / rows[1][2]['seconds']:.2f} (target <= 5)")
        print(f"peak memory {small:.1f} MB at {rows[0][0]} events vs {large:.1f} MB at {rows[1][0]} events "
              f"(growth {large - small:+.1f} MB for {rows[1][0] - rows[0][0]} more events)")


OURS_WRITE = """
from pathlib import Path
from ingester.pipeline import ingest_file
from ingester.resolve import PathRules
from ingester.target import open_embedded
path, catalog, root = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
with open_embedded(catalog, [root]) as target:
    outcomes = ingest_file(path, target.root, PathRules(data_roots=(Path(root),)))
assert [o.status for o in outcomes] == ['ingested'], [o.to_dict() for o in outcomes]
"""

TILED_WRITER = """
import orjson
from bluesky_tiled_plugins.writing.tiled_writer import TiledWriter
from ingester.target import open_embedded
path, catalog, root = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
with open_embedded(catalog, [root]) as target:
    writer = TiledWriter(target.root)
    with open(path, 'rb') as fh:
        for line in fh:
            name, doc = orjson.loads(line)
            writer(name, doc)
"""


def bench_write(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = []
        scalar = tmp / "scalar.jsonl"
        bench_data.write_scalar_run(scalar, args.events)
        cases.append((f"scalar {args.events} events x 8", scalar))
        sd = tmp / "stream_datum.jsonl"
        bench_data.write_stream_datum_run(sd, tmp / "data", args.datums)
        cases.append((f"{args.datums} StreamDatum", sd))
        print(f"{'run':<28} {'ours s':>8} {'TiledWriter s':>14} {'speed-up':>9} {'ours MB':>8} {'TW MB':>7}")
        for label, path in cases:
            ours = measure(OURS_WRITE, str(path), str(tmp / f"ours-{path.stem}"), str(tmp))
            theirs = measure(TILED_WRITER, str(path), str(tmp / f"tw-{path.stem}"), str(tmp))
            print(f"{label:<28} {ours['seconds']:>8.2f} {theirs['seconds']:>14.2f} "
                  f"{theirs['seconds'] / ours['seconds']:>8.1f}x {ours['peak_mb']:>8.0f} {theirs['peak_mb']:>7.0f}")
        if args.events >= 20_000:
            small = tmp / "scalar-small.jsonl"
            bench_data.write_scalar_run(small, args.events // 10)
            low = measure(OURS_WRITE, str(small), str(tmp / "ours-small"), str(tmp))
            high = measure(OURS_WRITE, str(scalar), str(tmp / "ours-again"), str(tmp))
            print(f"our peak memory: {low['peak_mb']:.0f} MB at {args.events // 10} events, "
                  f"{high['peak_mb']:.0f} MB at {args.events} events")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="which", required=True)
    p = sub.add_parser("validate", help="ingester validate vs a bare orjson loop")
    p.add_argument("--events", type=int, default=100_000)
    p.set_defaults(func=bench_validate)
    p = sub.add_parser("write", help="our writer vs TiledWriter, into fresh embedded catalogs")
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--datums", type=int, default=20_000)
    p.set_defaults(func=bench_write)
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    started = time.perf_counter()
    args.func(args)
    print(f"(benchmark took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
