"""`bench.py watch`: how long after a run file's stop line is written the run is readable in Tiled.

    python scripts/bench.py watch [--count 100] [--settle 1] [--poll-interval 1] [--gap 0.3]

`ingester watch` runs as a subprocess writing to a SimpleTiledServer in a process of its own
(`--tiled-uri`, the API key in the environment), once with the native observer (inotify) and once
with the polling observer (`--poll --poll-interval P`), each with a fresh server, spool folder and
ledger. Runs are written one
after another: the next one `gap` seconds after the previous one became readable, so that
latencies never queue behind each other. Each run's latency runs from its stop line being written and
flushed to the watcher's JSON log record saying the run was ingested, written once Tiled has answered
the writer's last request (the update that adds `stop` and sets `_ingest.state` to "complete"): from
then on the run is readable. Every run is then looked up in Tiled once, to confirm it is complete
and has its stop (see DoneFollower for why Tiled is not polled during the writes). Targets:
p95 <= settle + 1 s (native), <= settle + P + 1 s (polling).
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
    docs += [
        ("event", desc.compose_event(data={"x": float(i)}, timestamps={"x": 1.0}, seq_num=i + 1)) for i in range(events)
    ]
    lines = [orjson.dumps([name, doc]) + b"\n" for name, doc in docs]
    return run.start_doc["uid"], lines, orjson.dumps(["stop", run.compose_stop()]) + b"\n"


class DoneFollower(threading.Thread):
    """Follows the watcher's JSON log (a local file, every 10 ms) and keeps, for each file, the time
    of the record saying it was ingested: the writer's last request (the metadata update that adds
    `stop` and marks the run complete) has been answered by then, so the run is readable from that
    moment. Asking Tiled instead, every 50 ms, would itself load the one server the watcher writes
    to (a Tiled request costs ~40 ms of its time) and slow the writes being measured; Tiled is asked
    once per run afterwards (`readable`) to confirm it."""

    def __init__(self, log_path: Path):
        super().__init__(name="done-follower", daemon=True)
        self.log_path = log_path
        self.done: dict[str, float] = {}  # file name -> epoch seconds of its "ingested" record
        self.halt = threading.Event()

    def run(self) -> None:
        with open(self.log_path, "rb") as fh:
            pending = b""
            while not self.halt.is_set():
                chunk = fh.read()
                if not chunk:
                    self.halt.wait(0.01)
                    continue
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    self._take(line)

    def _take(self, line: bytes) -> None:
        try:
            record = orjson.loads(line)["record"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        words = record.get("message", "").split()
        if len(words) >= 2 and words[0] == "ingested":
            self.done.setdefault(Path(words[1]).name, record["time"]["timestamp"])


def readable(uri: str, api_key: str, uids: list[str]) -> tuple[int, int]:
    """Of `uids`, how many Tiled has complete, and how many of those carry their stop document."""
    import httpx

    complete = with_stop = 0
    with httpx.Client(base_url=uri.rstrip("/") + "/", headers={"Authorization": f"Apikey {api_key}"}) as http:
        for uid in uids:
            response = http.get(f"metadata/{uid}")
            if response.status_code != 200:
                continue
            metadata = response.json()["data"]["attributes"]["metadata"]
            if metadata.get("_ingest", {}).get("state") == "complete":
                complete += 1
                with_stop += "stop" in metadata
    return complete, with_stop


# A SimpleTiledServer in a process of its own, as a deployed Tiled is: in the benchmark's process it
# would share one interpreter (and its GIL) with the benchmark's own threads.
SERVE = r"""
import sys
from tiled.server import SimpleTiledServer
server = SimpleTiledServer(directory=sys.argv[1], readable_storage=[sys.argv[2]])
print(server.uri.split("?")[0], server.api_key, flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
server.close()
"""


class ServerProcess:
    def __init__(self, directory: Path, readable: Path):
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(directory), str(readable)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline().split()
        if len(line) != 2:
            self.process.kill()
            raise SystemExit("the Tiled server did not start")
        self.uri, self.api_key = line

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_watcher(spool: Path, uri: str, api_key: str, tmp: Path, settle: float, extra: list[str]) -> tuple:
    log_path = tmp / f"watch-{spool.name}.log"
    log = open(log_path, "w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ingester",
            "watch",
            str(spool),
            "--tiled-uri",
            uri,
            "--ledger",
            f"sqlite:///{tmp / f'{spool.name}-ledger.db'}",
            "--settle",
            str(settle),
            *extra,
        ],
        env={**os.environ, "TILED_API_KEY": api_key},
        stdout=log,
        stderr=subprocess.STDOUT,
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
    spool = tmp / f"spool-{observer}"
    spool.mkdir()
    server = ServerProcess(tmp / f"tiled-{observer}", spool)
    uri = server.uri
    extra = ["--poll", "--poll-interval", str(args.poll_interval)] if observer == "polling" else ["--no-poll"]
    process, log_path = start_watcher(spool, uri, server.api_key, tmp, args.settle, [*extra, "--log-json"])
    follower = DoneFollower(log_path)
    follower.start()
    stopped_at: dict[str, float] = {}  # file name -> epoch seconds its stop line was flushed
    uids: dict[str, str] = {}
    try:
        for n in range(args.count):
            uid, lines, stop = run_lines()
            name = f"run-{n:04d}.jsonl"
            uids[name] = uid
            with open(spool / name, "wb") as fh:
                fh.writelines(lines)
                fh.flush()
                fh.write(stop)
                fh.flush()
                stopped_at[name] = time.time()
            # The next run only once this one is in (or given up on): latencies never queue.
            deadline = time.monotonic() + args.settle + args.poll_interval + 30
            while name not in follower.done and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(args.gap)
    finally:
        follower.halt.set()
        follower.join()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    try:
        seen = {name: follower.done[name] - stopped_at[name] for name in stopped_at if name in follower.done}
        complete, with_stop = readable(uri, server.api_key, [uids[name] for name in seen])
    finally:
        server.close()
    return {
        "observer": observer,
        "latencies": list(seen.values()),
        "missing": len(stopped_at) - len(seen),
        "not_readable": len(seen) - complete,
        "without_stop": complete - with_stop,
        "target": args.settle + 1.0 + (args.poll_interval if observer == "polling" else 0.0),
        "log": log_path,
    }


def bench_watch(args: argparse.Namespace) -> None:
    observers = [o.strip() for o in args.observers.split(",") if o.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(
            f"ingester watch -> SimpleTiledServer (loopback), {args.count} small runs per observer, each written "
            f"{args.gap} s after the previous one became readable; settle {args.settle} s; "
            f"polling observer at --poll-interval {args.poll_interval} s; "
            "readiness: the watcher's JSON log record of each run ingested (each then confirmed complete in Tiled)"
        )
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
            verdict = "met" if p95 <= r["target"] and not (r["missing"] or r["not_readable"]) else "MISSED"
            target = f"<= {r['target']:.2f}"
            print(f"{r['observer']:<9} {len(lat):>5} {p50:>7.2f} {p95:>7.2f} {max(lat):>7.2f} {target:>11}  {verdict}")
            notes = []
            if r["missing"]:
                notes.append(f"{r['missing']} runs never became readable")
            if r["without_stop"]:
                notes.append(f"{r['without_stop']} runs complete without a stop in their metadata")
            if r["not_readable"]:
                notes.append(f"{r['not_readable']} runs reported ingested are not complete in Tiled")
            if notes:
                print(f"          {'; '.join(notes)}")
