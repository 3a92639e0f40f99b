"""`bench.py startup`: one small run, whole process, ours against a TiledWriter script, side by side.

Each measurement is a fresh process from the interpreter's start to its exit (wall clock) with its
peak memory (VmHWM, read by a tiny wrapper at exit), the median of `--repeat` runs, each run a fresh
copy of the run file under a new uid. TiledWriter is fed by a ten-line script over HTTP to one
SimpleTiledServer in a process of its own; ours writes to the same server (`--tiled-uri`) and, for
the embedded default, into a fresh catalog folder each time. Ratios are printed against the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_data

# Runs `code` (or `-m module args`) and prints its peak memory at exit: the child's own, not the parent's.
_WRAP = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write('BENCH_PEAK ' + next(l for l in open('/proc/self/status') "
    "if l.startswith('VmHWM')).split()[1] + '\\n'))\n"
)

TILED_WRITER = """
import sys, os, orjson
from tiled.client import from_uri
from bluesky_tiled_plugins import TiledWriter
client = from_uri(sys.argv[2], api_key=os.environ["TILED_API_KEY"])
writer = TiledWriter(client)
with open(sys.argv[1], "rb") as fh:
    for line in fh:
        name, doc = orjson.loads(line)
        writer(name, doc)
"""

OURS = "import sys; from ingester.cli.app import main; sys.argv[0] = 'ingester'; main()"

TARGETS = {
    ("scalar", "tiled-uri"): 3.0,
    ("hdf5", "tiled-uri"): 2.5,
    ("scalar", "embedded"): 1.5,
    ("hdf5", "embedded"): 1.5,
}
MEMORY_TARGET_MB = 200


def timed(code: str, args: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and peak MB of `python -c code args`, from the interpreter's start to its exit."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _WRAP + code, *args], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    peaks = [line for line in done.stderr.splitlines() if line.startswith("BENCH_PEAK ")]
    if done.returncode not in (0,) or not peaks:
        raise SystemExit(f"benchmark step failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return seconds, int(peaks[-1].split()[1]) / 1024


def fresh_copy(template: Path, uid: str, out: Path, n: int) -> Path:
    """The run file under a new start uid (a fresh run for every measurement)."""
    out.write_bytes(template.read_bytes().replace(uid.encode(), f"{n:08d}-{uid[9:]}".encode()))
    return out


def bench_startup(args: argparse.Namespace) -> None:
    from tiled.server import SimpleTiledServer

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = {
            "scalar": (tmp / "scalar.jsonl", bench_data.write_scalar_run(tmp / "scalar.jsonl", 60)),
            "hdf5": (
                tmp / "hdf5.jsonl",
                bench_data.write_stream_datum_run(tmp / "hdf5.jsonl", tmp / "data", 5, (240, 320)),
            ),
        }
        server = SimpleTiledServer(directory=tmp / "server", readable_storage=[tmp])
        env = {**os.environ, "TILED_API_KEY": server.api_key}
        uri = server.uri.split("?")[0]
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        n = 0
        try:
            for _ in range(args.repeat):
                for kind, (template, uid) in runs.items():
                    for side in ("tiledwriter", "tiled-uri", "embedded"):
                        n += 1
                        path = fresh_copy(template, uid, tmp / f"{kind}-{n}.jsonl", n)
                        if side == "tiledwriter":
                            measured = timed(TILED_WRITER, [str(path), uri], env)
                        elif side == "tiled-uri":
                            ledger = f"sqlite:///{tmp / f'ledger-{n}.db'}"
                            measured = timed(OURS, ["ingest-dir", str(path), "--tiled-uri", uri, "--ledger", ledger,
                                                    "--data-root", str(tmp)], env)  # fmt: skip
                        else:
                            catalog = tmp / f"catalog-{n}"
                            measured = timed(OURS, ["ingest-dir", str(path), "--catalog", str(catalog),
                                                    "--data-root", str(tmp)], env)  # fmt: skip
                        results.setdefault((kind, side), []).append(measured)
        finally:
            server.close()
    report(results, args.repeat)


def report(results: dict, repeat: int) -> None:
    median = {key: (statistics.median(s for s, _ in v), max(m for _, m in v)) for key, v in results.items()}
    print(f"one small run, whole process, median of {repeat} (fresh run each time); TiledWriter over HTTP")
    print(f"{'run':<8} {'writer':<12} {'seconds':>8} {'peak MB':>8} {'speed-up':>9} {'target':>7}  met")
    for kind in ("scalar", "hdf5"):
        theirs = median[(kind, "tiledwriter")][0]
        for side in ("tiledwriter", "tiled-uri", "embedded"):
            seconds, peak = median[(kind, side)]
            if side == "tiledwriter":
                print(f"{kind:<8} {side:<12} {seconds:>8.2f} {peak:>8.0f}")
                continue
            target = TARGETS[(kind, side)]
            ratio = theirs / seconds
            met = "yes" if ratio >= target and peak <= MEMORY_TARGET_MB else "no"
            print(f"{kind:<8} {side:<12} {seconds:>8.2f} {peak:>8.0f} {ratio:>8.2f}x {target:>6.1f}x  {met}")
    print(json.dumps({f"{k[0]}/{k[1]}": v for k, v in median.items()}))


def add_startup_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("startup", help="one small run, whole process: ours vs a TiledWriter script")
    p.add_argument("--repeat", type=int, default=3)
    p.set_defaults(func=bench_startup)
