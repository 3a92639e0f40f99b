"""`bench.py watch`: how long after a run file's stop line is written the run is readable in Tiled.

    python scripts/bench.py watch [--count 100] [--settle 1] [--poll-interval 1] [--gap 0.3]

`ingester watch` runs as a subprocess writing to a SimpleTiledServer (`--tiled-uri`, the API key in
the environment), once with the native observer (inotify) and once with the polling observer
(`--poll --poll-interval P`), each with a fresh server, spool folder and ledger. Runs are written one
after another: the next one `gap` seconds after the previous one became readable, so that
latencies never queue behind each other; a thread asks the server
every 50 ms which runs are complete (one search request: `_ingest.state == "complete"`, which the
writer sets in the same update that adds `stop`), and each run's latency is the time from its stop
line being written and flushed to the first poll that sees it. The stop's presence in the metadata
is checked once per run afterwards. Targets: p95 <= settle + 1 s (native), <= settle + P + 1 s
(polling).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import event_model
import orjson

__all__ = ["add_watch_parser", "bench_watch"]

POLL_SERVER_EVERY = 0.05


def add_watch_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("watch", help="stop line written -> run readable in Tiled, native and polling observers")
    p.add_argument("--count", type=int, default=100, help="runs per observer")
    p.add_argument("--settle", type=float, default=1.0, help="the watcher's --settle (its own default: 2 s)")
    p.add_argument("--poll-interval", type=float, default=1.0, help="the polling observer's --poll-interval")
    p.add_argument("--gap", type=float, default=0.3, help="seconds between one run becoming readable and the next run")
    p.add_argument("--observers", default="native,polling", help="comma-separated: native, polling")
    p.set_defaults(func=bench_watch)


def run_lines(events: int = 10) -> tuple[str, list[bytes], bytes]:
    """A small suitcase-jsonl run: its uid, the lines before the stop, the stop line."""
    run = event_model.compose_run(metadata={"plan_name": "bench_watch"})
    desc = run.compose_descriptor(name="primary", data_keys={"x": {"source": "sim", "dtype": "number", "shape": []}})
    docs = [("start", run.start_doc), ("descriptor", desc.descriptor_doc)]
    docs += [("event", desc.compose_event(data={"x": float(i)}, timestamps={"x": 1.0}, seq_num=i + 1))
             for i in range(events)]
    lines = [orjson.dumps([name, doc]) + b"\n" for name, doc in docs]
    return run.start_doc["uid"], lines, orjson.dumps(["stop", run.compose_stop()]) + b"\n"


class CompletePoller(threading.Thread):
    """Every 50 ms, one search for complete runs; remembers when each uid was first seen."""

    def __init__(self, uri: str, api_key: str):
        super().__init__(name="complete-poller", daemon=True)
        from tiled.client import from_uri

        self.client = from_uri(uri, api_key=api_key)
        self.seen: dict[str, float] = {}
        self.errors = 0
        self.halt = threading.Event()

    def run(self) -> None:
        from tiled.queries import Eq

        while not self.halt.is_set():
            started = time.monotonic()
            try:
                for uid in self.client.search(Eq("_ingest.state", "complete")):
                    self.seen.setdefault(uid, time.monotonic())
            except Exception:
                self.errors += 1
            self.halt.wait(max(0.0, POLL_SERVER_EVERY - (time.monotonic() - started)))

    def stop_has_landed(self, uid: str) -> bool:
        return "stop" in self.client[uid].metadata

    def close(self) -> None:
        self.halt.set()
        self.join()
        self.client.context.close()


def start_watcher(spool: Path, uri: str, api_key: str, tmp: Path, settle: float, extra: list[str]) -> tuple:
    log_path = tmp / f"watch-{spool.name}.log"
    log = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "ingester", "watch", str(spool), "--tiled-uri", uri,
         "--ledger", f"sqlite:///{tmp / f'{spool.name}-ledger.db'}", "--settle", str(settle), *extra],
        env={**os.environ, "TILED_API_KEY": api_key}, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while "watching " not in log_path.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"the watcher did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)
    return process, log_path


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * q // 100)))
    return ordered[int(rank) - 1]


def one_observer(observer: str, args: argparse.Namespace, tmp: Path) -> dict:
    from tiled.server import SimpleTiledServer

    spool = tmp / f"spool-{observer}"
    spool.mkdir()
    server = SimpleTiledServer(directory=tmp / f"tiled-{observer}", readable_storage=[spool])
    uri = server.uri.split("?")[0]
    extra = ["--poll", "--poll-interval", str(args.poll_interval)] if observer == "polling" else ["--no-poll"]
    process, log_path = start_watcher(spool, uri, server.api_key, tmp, args.settle, extra)
    poller = CompletePoller(uri, server.api_key)
    poller.start()
    stopped_at: dict[str, float] = {}
    try:
        for n in range(args.count):
            uid, lines, stop = run_lines()
            with open(spool / f"run-{n:04d}.jsonl", "wb") as fh:
                fh.writelines(lines)
                fh.flush()
                fh.write(stop)
                fh.flush()
                stopped_at[uid] = time.monotonic()
            # The next run only once this one is readable (or given up on): latencies never queue.
            deadline = stopped_at[uid] + args.settle + args.poll_interval + 30
            while uid not in poller.seen and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(args.gap)
    finally:
        poller.halt.set()
        poller.join()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    try:
        seen = {uid: poller.seen[uid] - stopped_at[uid] for uid in stopped_at if uid in poller.seen}
        without_stop = [uid for uid in seen if not poller.stop_has_landed(uid)]
    finally:
        poller.client.context.close()
        server.close()
    return {
        "observer": observer,
        "latencies": list(seen.values()),
        "missing": len(stopped_at) - len(seen),
        "without_stop": len(without_stop),
        "poll_errors": poller.errors,
        "target": args.settle + 1.0 + (args.poll_interval if observer == "polling" else 0.0),
        "log": log_path,
    }


def bench_watch(args: argparse.Namespace) -> None:
    observers = [o.strip() for o in args.observers.split(",") if o.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"ingester watch -> SimpleTiledServer (loopback), {args.count} small runs per observer, each written "
              f"{args.gap} s after the previous one became readable; settle {args.settle} s; "
              f"polling observer at --poll-interval {args.poll_interval} s; "
              f"readiness: one search for complete runs every {POLL_SERVER_EVERY * 1000:.0f} ms")
        results = []
        for observer in observers:
            results.append(one_observer(observer, args, tmp))
        print(f"{'observer':<9} {'runs':>5} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'target p95':>11}  verdict")
        for r in results:
            lat = r["latencies"]
            if not lat:
                print(f"{r['observer']:<9} no run became readable; log:\n{r['log'].read_text()[-3000:]}")
                continue
            p50, p95 = statistics.median(lat), percentile(lat, 95)
            verdict = "met" if p95 <= r["target"] and not r["missing"] else "MISSED"
            target = f"<= {r['target']:.2f}"
            print(f"{r['observer']:<9} {len(lat):>5} {p50:>7.2f} {p95:>7.2f} {max(lat):>7.2f} {target:>11}  {verdict}")
            notes = []
            if r["missing"]:
                notes.append(f"{r['missing']} runs never became readable")
            if r["without_stop"]:
                notes.append(f"{r['without_stop']} runs complete without a stop in their metadata")
            if r["poll_errors"]:
                notes.append(f"{r['poll_errors']} readiness polls failed")
            if notes:
                print(f"          {'; '.join(notes)}")
