"""Benchmarks: our code side by side with the reference, in one invocation, printing ratios.

    python scripts/bench.py validate [--events N]   # ingester validate vs a bare orjson loop
    python scripts/bench.py write [--events N] [--datums N]   # our writer vs TiledWriter, one SimpleTiledServer
    python scripts/bench.py many [--count N]   # many small runs: ingest-dir --jobs 4 vs TiledWriter (bench_many.py)
    python scripts/bench.py watch [--count N]  # stop line -> readable in Tiled, `ingester watch` (bench_watch.py)
    python scripts/bench.py startup [--repeat N]  # one small run, whole process, vs a TiledWriter script
    python scripts/bench.py export [--count N] [--events N]  # export, then re-import, beside ingest-dir (bench_export.py)

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
import bench_export  # noqa: E402
import bench_many  # noqa: E402
import bench_scale  # noqa: E402
import bench_startup  # noqa: E402
import bench_watch  # noqa: E402


def measure(code: str, *args: str, env: dict | None = None) -> dict:
    """Run `code` in a fresh interpreter; return its wall time (as it reports) and peak RSS in MB."""
    wrapper = (
        "import resource, sys, time, json, os\n"
        "t0 = time.perf_counter()\n"
        f"{code}\n"
        "elapsed = time.perf_counter() - t0\n"
        # VmHWM, not ru_maxrss: the latter survives fork+exec and would report the parent's size.
        "rss = int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024\n"
        "print('BENCH ' + json.dumps({'seconds': elapsed, 'peak_mb': rss}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
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
from ingester.read.validate import validate_file
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
            print(
                f"{events:>8} {size / 1e6:>6.1f} {base['seconds']:>9.3f} {ours['seconds']:>10.3f} {ratio:>6.2f} {ours['peak_mb']:>8.1f}"
            )
        small, large = rows[0][3]["peak_mb"], rows[1][3]["peak_mb"]
        print(
            f"validate/orjson time ratio at {args.events} events: {rows[1][3]['seconds'] / rows[1][2]['seconds']:.2f} (target <= 5)"
        )
        print(
            f"peak memory {small:.1f} MB at {rows[0][0]} events vs {large:.1f} MB at {rows[1][0]} events "
            f"(growth {large - small:+.1f} MB for {rows[1][0] - rows[0][0]} more events)"
        )


OURS_WRITE = """
from pathlib import Path
from ingester.ingest.pipeline import RunIngester
from ingester.config import PathRules
from ingester.target.targets import open_remote
path, uri, root = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
if sys.argv[4:] == ['external']:  # what a run with external data needs, imported before the clock as TiledWriter's is
    import bluesky_tiled_plugins.writing.consolidators, bluesky_tiled_plugins.writing.validator
with open_remote(uri, os.environ['TILED_API_KEY']) as target:
    t0 = time.perf_counter()
    outcomes = RunIngester(target.writer_root, PathRules(data_roots=(Path(root),))).ingest(path).runs
assert [o.status for o in outcomes] == ['ingested'], [o.to_dict() for o in outcomes]
"""

TILED_WRITER = """
import orjson
from bluesky_tiled_plugins.writing.tiled_writer import TiledWriter
from ingester.target.targets import open_remote
path, uri = sys.argv[1], sys.argv[2]
with open_remote(uri, os.environ['TILED_API_KEY']) as target:
    t0 = time.perf_counter()
    writer = TiledWriter(target.root)
    with open(path, 'rb') as fh:
        for line in fh:
            name, doc = orjson.loads(line)
            writer(name, doc)
"""


def with_new_uid(path: Path, uid: str, out: Path) -> Path:
    """A copy of a run file under another start uid, so both writers can use the same server."""
    out.write_bytes(path.read_bytes().replace(uid.encode(), b"copy-" + uid.encode()))
    return out


def bench_write(args: argparse.Namespace) -> None:
    from tiled.server import SimpleTiledServer

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = []
        scalar = tmp / "scalar.jsonl"
        cases.append((f"scalar {args.events} events x 8", scalar, bench_data.write_scalar_run(scalar, args.events), []))
        sd = tmp / "stream_datum.jsonl"
        cases.append(
            (
                f"{args.datums} StreamDatum",
                sd,
                bench_data.write_stream_datum_run(sd, tmp / "data", args.datums),
                ["external"],
            )
        )
        server = SimpleTiledServer(directory=tmp / "server", readable_storage=[tmp])
        env = {"TILED_API_KEY": server.api_key}
        server.uri = server.uri.split("?")[0]  # the key travels in the environment, not in argv
        try:
            print("Tiled: SimpleTiledServer on loopback (SQLite catalog + SQLite tables), one server for both writers;")
            print("each writer in its own process, the libraries its run needs imported before the clock starts")
            print(f"{'run':<28} {'ours s':>8} {'TiledWriter s':>14} {'speed-up':>9} {'ours MB':>8} {'TW MB':>7}")
            for label, path, uid, extra in cases:
                theirs = measure(TILED_WRITER, str(path), server.uri, env=env)
                ours = measure(
                    OURS_WRITE,
                    str(with_new_uid(path, uid, tmp / f"ours-{path.name}")),
                    server.uri,
                    str(tmp),
                    *extra,
                    env=env,
                )
                print(
                    f"{label:<28} {ours['seconds']:>8.2f} {theirs['seconds']:>14.2f} "
                    f"{theirs['seconds'] / ours['seconds']:>8.1f}x {ours['peak_mb']:>8.0f} {theirs['peak_mb']:>7.0f}"
                )
            if args.events >= 20_000:
                small = tmp / "scalar-small.jsonl"
                bench_data.write_scalar_run(small, args.events // 10)
                low = measure(OURS_WRITE, str(small), server.uri, str(tmp), env=env)
                print(
                    f"our peak memory: {low['peak_mb']:.0f} MB at {args.events // 10} events, "
                    f"{ours_scalar_mb(cases, tmp, server, env):.0f} MB at {args.events} events"
                )
        finally:
            server.close()


def ours_scalar_mb(cases, tmp: Path, server, env) -> float:
    label, path, uid, _ = cases[0]
    again = with_new_uid(path, uid, tmp / "again.jsonl")
    again.write_bytes(again.read_bytes().replace(b"copy-", b"again-"))
    return measure(OURS_WRITE, str(again), server.uri, str(tmp), env=env)["peak_mb"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="which", required=True)
    p = sub.add_parser("validate", help="ingester validate vs a bare orjson loop")
    p.add_argument("--events", type=int, default=100_000)
    p.set_defaults(func=bench_validate)
    p = sub.add_parser("write", help="our writer vs TiledWriter, on one SimpleTiledServer")
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--datums", type=int, default=20_000)
    p.set_defaults(func=bench_write)
    bench_many.add_many_parser(sub)
    bench_watch.add_watch_parser(sub)
    bench_scale.add_scale_parser(sub)
    bench_startup.add_startup_parser(sub)
    bench_export.add_export_parser(sub)
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    started = time.perf_counter()
    args.func(args)
    print(f"(benchmark took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
