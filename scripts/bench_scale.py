"""`bench.py scale`: ingest-dir worker processes sharing one folder through ledger claims.

    python scripts/bench.py scale [--runs 1000] [--workers 1,2,4] [--jobs 4] [--postgres URL]

For each worker count: fresh PostgreSQL databases (Tiled catalog, Tiled tables, ledger), a fresh
Tiled on them (scripts/tiled-postgres.sh), then that many `ingester ingest-dir` processes started
at once on the same folder of small runs (10 events of 3 columns and a baseline each), with
`--parallel-writes` and a PostgreSQL ledger; claims share the files out. Prints runs/s, the
speed-up over one worker and what claiming cost (time in the ledger's claim/renew/release calls,
as each worker reports it), then drops the databases.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import bench_data

HERE = Path(__file__).resolve().parent
KEY = "benchscalekey"
CLAIMS = re.compile(r"claims: (\d+) ledger calls, ([0-9.]+) s")


def add_scale_parser(sub) -> None:
    p = sub.add_parser("scale", help="1, 2, 4 ingest-dir workers sharing one folder (Tiled on PostgreSQL)")
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--workers", default="1,2,4", help="worker counts to try, comma-separated")
    p.add_argument("--jobs", type=int, default=4, help="--jobs of each worker")
    p.add_argument("--lease", type=float, default=60.0)
    p.add_argument("--tiled-workers", type=int, default=1, help="uvicorn workers of the Tiled server")
    p.add_argument(
        "--postgres",
        default=os.environ.get("INGESTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    p.set_defaults(func=bench_scale)


def bench_scale(args: argparse.Namespace) -> dict:
    counts = [int(n) for n in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "spool"
        bench_data.write_small_runs(folder, args.runs)
        rows = [_one(args, n, folder, Path(tmp) / f"w{n}") for n in counts]
    base = rows[0]["runs_per_s"]  # the speed-up is over the first worker count (1 by default)
    print(
        f"{args.runs} small runs, ingest-dir --jobs {args.jobs} --parallel-writes per worker, "
        f"Tiled on PostgreSQL ({args.tiled_workers} uvicorn worker(s)), {os.cpu_count()} cores"
    )
    print(
        f"{'workers':>7} {'seconds':>8} {'runs/s':>7} {'speed-up':>8} {'ingested':>17} "
        f"{'claim calls':>11} {'claim s':>8} {'claim ms/run':>12} {'claim share':>11}"
    )
    for row in rows:
        print(
            f"{row['workers']:>7} {row['seconds']:>8.1f} {row['runs_per_s']:>7.2f} {row['runs_per_s'] / base:>8.2f} "
            f"{'+'.join(map(str, row['ingested_by'])):>17} {row['claim_calls']:>11} {row['claim_seconds']:>8.2f} "
            f"{row['claim_ms_per_run']:>12.1f} {row['claim_share'] * 100:>10.2f}%"
        )
    print("claim share: claim/renew/release time over the workers' thread time (batch seconds x jobs)")
    return {"rows": rows}


def _one(args: argparse.Namespace, workers: int, folder: Path, work: Path) -> dict:
    work.mkdir()
    server = _Server(args.postgres, work, folder, args.tiled_workers)
    try:
        server.start()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("INGESTER_")}, "TILED_API_KEY": KEY}
        command = [sys.executable, "-m", "ingester", "ingest-dir", str(folder), "--tiled-uri", server.uri,
                   "--ledger", server.url("ledger"), "--parallel-writes", "--jobs", str(args.jobs),
                   "--lease", str(args.lease)]  # fmt: skip
        started = time.perf_counter()
        processes = [
            subprocess.Popen(
                [*command, "--report", str(work / f"report-{n}.json")],
                env=env,
                cwd=work,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for n in range(workers)
        ]
        errors = [p.communicate()[1].decode(errors="replace") for p in processes]
        seconds = time.perf_counter() - started
        for process, err in zip(processes, errors, strict=True):
            if process.returncode != 0:
                raise SystemExit(f"a worker exited {process.returncode}:\n{err[-3000:]}")
        reports = [json.loads((work / f"report-{n}.json").read_text()) for n in range(workers)]
        claims = [CLAIMS.search(err) for err in errors]
        calls = sum(int(m.group(1)) for m in claims if m)
        claim_seconds = sum(float(m.group(2)) for m in claims if m)
        ingested = [r["counts"].get("ingested", 0) for r in reports]
        if sum(ingested) != args.runs:
            raise SystemExit(f"{sum(ingested)} runs ingested by {workers} workers, expected {args.runs}")
        thread_seconds = sum(r["seconds"] for r in reports) * args.jobs
        return {
            "workers": workers, "seconds": seconds, "runs_per_s": args.runs / seconds, "ingested_by": ingested,
            "claim_calls": calls, "claim_seconds": claim_seconds, "claim_ms_per_run": claim_seconds / args.runs * 1000,
            "claim_share": claim_seconds / thread_seconds if thread_seconds else 0.0,
        }  # fmt: skip
    finally:
        server.close()


class _Server:
    """scripts/tiled-postgres.sh on a free port, over databases of its own, dropped on close."""

    def __init__(self, postgres: str, work: Path, readable: Path, tiled_workers: int):
        from sqlalchemy.engine import make_url

        self.base = make_url(postgres).set(drivername="postgresql")
        tag = uuid.uuid4().hex[:8]
        self.names = {part: f"bench_scale_{tag}_{part}" for part in ("catalog", "tables", "ledger")}
        self.work, self.readable, self.tiled_workers = work, readable, tiled_workers
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def url(self, part: str | None) -> str:
        return self.base.set(database=self.names[part] if part else "postgres").render_as_string(hide_password=False)

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url(None), autocommit=True) as conn:
            conn.execute(statement)

    def start(self) -> None:
        import httpx

        self._admin(f'CREATE DATABASE "{self.names["ledger"]}"')
        self.log = open(self.work / "tiled.log", "wb")
        self.process = subprocess.Popen(
            [str(HERE / "tiled-postgres.sh"), "--postgres", self.url(None), "--catalog-db", self.names["catalog"],
             "--tables-db", self.names["tables"], "--data", str(self.work / "data"), "--read", str(self.readable),
             "--port", str(self.port), "--workers", str(self.tiled_workers), "--pool", "20"],
            env={**os.environ, "TILED_SINGLE_USER_API_KEY": KEY}, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.uri}/api/v1/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"the Tiled server did not start: {(self.work / 'tiled.log').read_text()[-3000:]}")

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(30)
        for name in self.names.values():
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
