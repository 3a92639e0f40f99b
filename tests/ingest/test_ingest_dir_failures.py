"""`ingester ingest-dir` when things break under it: killed mid-run, Tiled gone mid-folder.

Real processes against a real Tiled (a SimpleTiledTiledServer on loopback), the way they fail in use.
Afterwards every run must be in Tiled exactly once and complete, with no half-written run left,
and the ledger must say so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ingester.config import redact_uri
from ingester.ledger.store import Ledger
from support.runfiles import write_run_file
from support.servers import TiledServer, wait_for


def ingester(server: TiledServer, tmp_path: Path, *args: str, wait: bool = True, env: dict | None = None):
    """`python -m ingester ARGS` against `server`, the API key in the environment, one ledger per test."""
    command = [
        sys.executable,
        "-m",
        "ingester",
        *args,
        "--tiled-uri",
        server.uri,
        "--ledger",
        f"sqlite:///{tmp_path / 'ledger.db'}",
    ]
    env = {**os.environ, "TILED_API_KEY": server.api_key, **(env or {})}
    if wait:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    log = open(tmp_path / f"ingest-{time.monotonic_ns()}.log", "w")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def runs_in_tiled(server: TiledServer) -> dict[str, dict]:
    """Every run container on the server: uid -> metadata (one request per page, then one per run)."""
    from tiled.client import from_uri

    client = from_uri(server.uri, api_key=server.api_key)
    try:
        return {uid: dict(node.metadata) for uid, node in client.items()}
    finally:
        client.context.close()


def state_of(server: TiledServer, uid: str) -> str | None:
    from tiled.client import from_uri

    client = from_uri(server.uri, api_key=server.api_key)
    try:
        return client[uid].metadata["_ingest"]["state"]
    except KeyError:
        return None
    finally:
        client.context.close()


def assert_each_run_once_and_complete(server: TiledServer, uids: set[str]) -> None:
    from tiled.client import from_uri

    client = from_uri(server.uri, api_key=server.api_key)
    try:
        keys = list(client)
    finally:
        client.context.close()
    assert sorted(keys) == sorted(uids)  # nothing missing, nothing twice, nothing else
    found = runs_in_tiled(server)
    leftovers = {uid: md["_ingest"]["state"] for uid, md in found.items() if md["_ingest"]["state"] != "complete"}
    assert not leftovers, f"runs not complete: {leftovers}"
    assert all("stop" in md for md in found.values())


def ledger_statuses(server: TiledServer, tmp_path: Path) -> dict[str, str]:
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", redact_uri(server.uri)) as book:
        return {Path(record.path).name: record.status for record in book.files()}


def test_kill_9_in_the_middle_of_a_large_run_then_a_rerun_leaves_each_run_once(server, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    uids = {write_run_file(spool / f"small{i}.jsonl") for i in range(3)}
    big = write_run_file(spool / "big.jsonl", events=300_000)
    uids.add(big)

    from tiled.client import from_uri

    client = from_uri(server.uri, api_key=server.api_key)  # one client: the server shares this process
    # The killed worker's claims on its file and run expire a lease after its death: a short lease keeps the
    # rerun from waiting out the default 60 s.
    short_lease = {"INGESTER_LEASE": "2"}
    process = ingester(server, tmp_path, "ingest-dir", str(spool), "--jobs", "2", wait=False, env=short_lease)
    try:
        deadline = time.monotonic() + 60
        while state_quietly(client, big) != "writing":
            assert process.poll() is None, "ingest-dir finished before the large run could be caught being written"
            assert time.monotonic() < deadline, "the large run never appeared in Tiled"
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
        client.context.close()
    assert process.returncode == -signal.SIGKILL
    assert state_of(server, big) == "writing"  # the kill left a partial run behind: the rerun must replace it

    again = ingester(server, tmp_path, "ingest-dir", str(spool), "--jobs", "2", env=short_lease)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_each_run_once_and_complete(server, uids)
    assert set(ledger_statuses(server, tmp_path).values()) == {"ingested"}
    assert len(ledger_statuses(server, tmp_path)) == 4


def state_quietly(client, uid: str) -> str | None:
    try:
        return client[uid].metadata["_ingest"]["state"]
    except Exception:  # not there yet (404), or the server busy
        return None


def test_tiled_stopped_mid_folder_stops_the_pass_and_a_rerun_completes_it(server, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    uids = {write_run_file(spool / f"run{i:02d}.jsonl", events=20) for i in range(40)}
    report = tmp_path / "report.json"

    # tiled's client retries a refused connection for up to 10 attempts / 45 s per request (stamina): one
    # attempt keeps the test short. The pass stops at the first run the gone server fails, whatever the wait.
    one_attempt = {"TILED_RETRY_ATTEMPTS": "1"}
    process = ingester(
        server, tmp_path, "ingest-dir", str(spool), "--jobs", "2", "--report", str(report), wait=False, env=one_attempt
    )
    try:
        wait_for(lambda: len(server.uids()) >= 5, timeout=60, what="the first runs in Tiled")
        server.stop()
        assert process.wait(timeout=120) == 2  # the target is unreachable: a usage-level error, not a verdict
    finally:
        process.kill()
    output = (tmp_path / next(p.name for p in tmp_path.glob("ingest-*.log"))).read_text()
    assert "target unreachable" in output and "Traceback" not in output, output[-3000:]

    entries = {Path(e["path"]).name: e for e in json.loads(report.read_text())["files"]}
    by_status = {s: {n for n, e in entries.items() if e["status"] == s} for s in ("ingested", "failed", "interrupted")}
    assert len(entries) == 40 and set().union(*by_status.values()) == set(entries), {
        n: e["status"] for n, e in entries.items()
    }
    assert len(by_status["ingested"]) >= 3 and 1 <= len(by_status["failed"]) <= 2  # at most one a job
    assert by_status["interrupted"], "the files after the target went away are left, not failed"
    assert all("target unavailable" in entries[name]["reason"] for name in by_status["failed"])
    ledger = ledger_statuses(server, tmp_path)
    assert {name for name, status in ledger.items() if status == "failed"} == by_status["failed"]
    assert not set(ledger) & by_status["interrupted"]  # never looked at: nothing recorded

    status = ingester(server, tmp_path, "status", "--failed")
    assert status.returncode == 0, status.stdout + status.stderr
    listed = [line for line in status.stdout.splitlines() if ": failed: " in line]
    assert {Path(line.split(":", 1)[0]).name for line in listed} == by_status["failed"]

    server.start()  # same port, same directory, same API key
    again = ingester(server, tmp_path, "ingest-dir", str(spool), "--jobs", "2")
    assert again.returncode == 1, again.stdout + again.stderr  # the failed files are still failed...
    assert "`ingester retry` tries the failed ones again" in again.stdout
    retried = ingester(server, tmp_path, "retry")  # ...until retried
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert_each_run_once_and_complete(server, uids)
    assert set(ledger_statuses(server, tmp_path).values()) == {"ingested"}
    assert len(ledger_statuses(server, tmp_path)) == 40
