"""Scale-out, end to end: several ingester processes, one Tiled on PostgreSQL, claims on the ledger.

Needs PostgreSQL (INGESTER_TEST_POSTGRES_URL, see tests/postgres_tiled.py): skipped without it,
failing when it is set and the server cannot be reached. Every run must end in Tiled exactly once
and complete, whatever happens to the workers: three `ingester watch` processes with one killed
(SIGKILL) half-way, and `ingest-dir` processes started at the same moment over the same (or
overlapping) folders.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import event_model
import orjson
import pytest

from ingester.ledger.store import Ledger

LEASE = "3"
INGESTER = [sys.executable, "-m", "ingester"]
DONE = ("ingested", "already-present")


def write_small_run(path: Path, events: int = 10) -> str:
    """One suitcase-jsonl run: `events` events of two columns and a two-row baseline."""
    run = event_model.compose_run(metadata={"plan_name": "scale_out_test"})
    keys = {
        "x": {"source": "sim", "dtype": "number", "shape": []},
        "y": {"source": "sim", "dtype": "number", "shape": []},
    }
    base = run.compose_descriptor(
        name="baseline", data_keys={"temp": {"source": "sim", "dtype": "number", "shape": []}}
    )
    primary = run.compose_descriptor(name="primary", data_keys=keys)
    docs = [
        ("start", run.start_doc),
        ("descriptor", base.descriptor_doc),
        ("event", base.compose_event(data={"temp": 21.0}, timestamps={"temp": 1.0}, seq_num=1)),
        ("descriptor", primary.descriptor_doc),
    ]
    docs += [
        (
            "event",
            primary.compose_event(
                data={"x": float(i), "y": i * 0.5}, timestamps={"x": 1.0, "y": 1.0}, seq_num=i + 1, validate=False
            ),
        )
        for i in range(events)
    ]
    docs += [
        ("event", base.compose_event(data={"temp": 21.5}, timestamps={"temp": 2.0}, seq_num=2)),
        ("stop", run.compose_stop()),
    ]
    tmp = path.with_name(f".{path.name}.tmp")  # not a run file name: appears whole, as a finished acquisition
    tmp.write_bytes(b"".join(orjson.dumps([name, doc]) + b"\n" for name, doc in docs))
    tmp.rename(path)
    return run.start_doc["uid"]


def make_spool(spool: Path, runs: int, folders: int = 1) -> dict[str, Path]:
    """`runs` run files spread over `folders` sub-folders; uid -> path."""
    made = {}
    for n in range(runs):
        folder = spool / f"sub{n % folders}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"run-{n:04d}.jsonl"
        made[write_small_run(path)] = path
    return made


def worker_env(server) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGESTER_")}
    return {**env, "TILED_API_KEY": server.api_key}


def start_watch(server, spool: Path, log: Path) -> subprocess.Popen:
    command = [*INGESTER, "watch", str(spool), "--tiled-uri", server.uri, "--ledger", server.ledger_url,
               "--parallel-writes", "--settle", "1", "--lease", LEASE, "--poll", "--poll-interval", "1",
               "--rescan-interval", "30", "--retry-after", "1"]  # fmt: skip
    return subprocess.Popen(
        command, env=worker_env(server), cwd=log.parent, stdout=subprocess.DEVNULL, stderr=open(log, "wb")
    )


def worker_id(process: subprocess.Popen) -> str:
    return f"{socket.gethostname()}:{process.pid}"


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def ledger_of(server) -> Ledger:
    from ingester.config import redact_uri

    return Ledger.open(server.ledger_url, redact_uri(server.uri), worker_id="test-observer")


def assert_in_tiled_exactly_once_and_complete(server, uids: set[str], *, validate_sample: int) -> None:
    from bluesky_tiled_plugins.writing.validator import validate

    client = server.client()
    try:
        found = list(client)
        assert len(found) == len(set(found))
        assert set(found) == uids, f"missing {len(uids - set(found))}, unexpected {len(set(found) - uids)}"
        for uid, node in client.items():
            metadata = node.metadata
            assert metadata["_ingest"]["state"] == "complete" and "stop" in metadata, uid
            assert sorted(node) == ["baseline", "primary"], uid
        for uid in random.Random(6).sample(sorted(uids), validate_sample):
            assert validate(client[uid], fix_errors=False, try_reading=True), uid
            assert client[uid]["primary"].read()["x"].shape == (10,)
    finally:
        client.context.close()


def ingested_lines(logs: list[Path]) -> Counter:
    """How often each path was logged as ingested, over every worker's log."""
    pattern = re.compile(r"INFO\s+(?:ingested|already-present) (\S+) \(")
    return Counter(m.group(1) for log in logs for m in pattern.finditer(log.read_text(errors="replace")))


def test_three_watchers_one_killed_every_run_exactly_once(tiled_on_postgres, tmp_path):
    server = tiled_on_postgres.start()
    spool = server.readable
    expected = make_spool(spool, 200, folders=4)
    logs = [tmp_path / f"watch-{n}.log" for n in range(3)]
    workers = [start_watch(server, spool, log) for log in logs]
    book = ledger_of(server)
    try:

        def settled() -> int:
            return sum(n for status, n in book.summary().items() if status in DONE)

        wait_for(lambda: settled() >= 100, 120, "half of the runs")
        victim = workers[0]
        victim_id = worker_id(victim)
        held: set[str] = set()
        for _ in range(100):  # freeze it until caught holding a claim, then kill it
            victim.send_signal(signal.SIGSTOP)
            held = {r.path for r in book.files() if r.owner == victim_id and r.status == "claimed"}
            if held:
                break
            victim.send_signal(signal.SIGCONT)
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        held_runs = {r.uid for r in book.runs() if r.owner == victim_id}
        wait_for(lambda: settled() == 200, 150, "every file settled")
        for process in workers[1:]:
            process.send_signal(signal.SIGTERM)
        assert [process.wait(60) for process in workers[1:]] == [0, 0]

        files = {r.path: r for r in book.files()}
        assert len(files) == 200 and {r.status for r in files.values()} <= set(DONE)
        assert all(r.owner is None for r in files.values()), "every claim released"
        assert held, "the victim was killed while holding a file claim"
        for path in held:  # taken over after the lease, and finished by another worker
            assert files[path].status in DONE and files[path].attempts == 1
        for uid in held_runs:
            assert book.lookup_run(uid).status in DONE
        runs = book.runs()
        assert {r.uid for r in runs} == set(expected)
        assert all(r.attempts == 1 and r.status in DONE for r in runs), "each run recorded once"
        counts = ingested_lines(logs)  # (the victim may have died between recording a file and logging it)
        assert all(n == 1 for n in counts.values()), [p for p, n in counts.items() if n > 1]
        assert len(counts) >= len(expected) - 1
        assert_in_tiled_exactly_once_and_complete(server, set(expected), validate_sample=20)
    finally:
        book.close()
        for process in workers:
            if process.poll() is None:
                process.kill()
                process.wait()


def run_ingest_dirs(server, commands: list[list[str]], cwd: Path) -> list[dict]:
    """Start every `ingest-dir` at the same moment; their JSON reports, in order."""
    processes = []
    for n, args in enumerate(commands):
        report = cwd / f"report-{n}.json"
        command = [*INGESTER, "ingest-dir", *args, "--tiled-uri", server.uri, "--parallel-writes", "--jobs", "4",
                   "--lease", LEASE, "--report", str(report)]  # fmt: skip
        processes.append(
            (
                subprocess.Popen(
                    command, env=worker_env(server), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
                ),
                report,
            )
        )
    reports = []
    for process, report in processes:
        output = process.communicate(timeout=120)[0].decode(errors="replace")
        assert process.returncode == 0, output[-3000:]
        reports.append(json.loads(report.read_text()))
    return reports


def assert_each_file_ingested_once(reports: list[dict], expected: dict[str, Path]) -> None:
    by_path: dict[str, list[str]] = {}
    for report in reports:
        for entry in report["files"]:
            by_path.setdefault(entry["path"], []).append(entry["status"])
    for path in map(str, expected.values()):
        statuses = by_path[path]
        assert statuses.count("ingested") == 1, (path, statuses)
        assert set(statuses) <= {"ingested", "unchanged"}, (path, statuses)


@pytest.mark.parametrize("ledger", ["sqlite", "postgresql"])
def test_two_ingest_dirs_at_once_on_the_same_folder(tiled_on_postgres, tmp_path, ledger):
    server = tiled_on_postgres.start()
    expected = make_spool(server.readable, 30, folders=3)
    # The default ledger with --tiled-uri is ./ingester-ledger.db: both processes share the cwd.
    extra = [] if ledger == "sqlite" else ["--ledger", server.ledger_url]
    reports = run_ingest_dirs(server, [[str(server.readable), *extra]] * 2, tmp_path)
    assert_each_file_ingested_once(reports, expected)
    assert_in_tiled_exactly_once_and_complete(server, set(expected), validate_sample=5)


def test_ingest_dirs_over_overlapping_folders(tiled_on_postgres, tmp_path):
    server = tiled_on_postgres.start()
    spool = server.readable
    expected = make_spool(spool, 30, folders=3)
    ledger = ["--ledger", server.ledger_url]
    commands = [
        [str(spool), *ledger],
        [str(spool / "sub0"), str(spool / "sub1"), *ledger],
        [str(spool / "sub1"), *ledger],
    ]
    reports = run_ingest_dirs(server, commands, tmp_path)
    assert_each_file_ingested_once(reports, expected)
    assert_in_tiled_exactly_once_and_complete(server, set(expected), validate_sample=5)
    with ledger_of(server) as book:
        assert all(r.attempts == 1 for r in book.runs())
        workers = {w.command for w in book.workers()}
        assert workers == {"ingest-dir"} and len(book.workers()) == 3, "ingest-dir gives heartbeats"


# --- claims without PostgreSQL: the lease keeper and the batch's guards on an SQLite ledger ----------------


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def test_a_kept_lease_outlives_its_length_and_is_free_after_release(sqlite_url, tmp_path):
    from ingester.ledger.lease import LeaseKeeper

    path = tmp_path / "run.jsonl"
    with Ledger.open(sqlite_url, "t", worker_id="a") as mine, Ledger.open(sqlite_url, "t", worker_id="b") as theirs:
        with LeaseKeeper(mine, 0.3) as keeper:
            assert keeper.claim_file(path)
            assert not keeper.claim_file(path), "a second thread of the same worker is refused too"
            time.sleep(1.0)  # three leases: renewed meanwhile
            assert not theirs.claim_file(path, 0.3)
            keeper.release_file(path)
            assert theirs.claim_file(path, 0.3)
        assert keeper.seconds > 0 and keeper.calls >= 4 and keeper.lost == 0


def test_a_dead_workers_lease_expires(sqlite_url, tmp_path):
    with Ledger.open(sqlite_url, "t", worker_id="dead") as dead, Ledger.open(sqlite_url, "t", worker_id="b") as alive:
        assert dead.claim_run("uid-1", 0.3)
        assert not alive.claim_run("uid-1", 0.3)
        time.sleep(0.4)
        assert alive.claim_run("uid-1", 0.3)


def test_a_run_claimed_elsewhere_is_waited_for_then_written(sqlite_url):
    import threading

    from ingester.ingest.guards import WriteGuards
    from ingester.ledger.lease import LeaseKeeper

    with Ledger.open(sqlite_url, "t", worker_id="a") as mine, Ledger.open(sqlite_url, "t", worker_id="b") as theirs:
        assert theirs.claim_run("uid-1", 30)
        threading.Timer(0.5, theirs.release_run, args=["uid-1"]).start()
        with LeaseKeeper(mine, 30) as keeper:
            started = time.monotonic()
            with WriteGuards(False, keeper).writing("uid-1"):
                waited = time.monotonic() - started
                assert mine.lookup_run("uid-1").owner == "a"
        assert 0.4 < waited < 5
        assert mine.lookup_run("uid-1") is None, "a claim-only row is gone once released"


def test_a_file_claimed_elsewhere_is_skipped_and_not_recorded(sqlite_url, tmp_path):
    from ingester.config import Settings
    from ingester.ingest.files import BatchOptions, FileIngester
    from ingester.status import Outcome

    path = tmp_path / "run.jsonl"
    write_small_run(path)
    settings = Settings(lease=30)
    with Ledger.open(sqlite_url, "t", worker_id="a") as mine, Ledger.open(sqlite_url, "t", worker_id="b") as theirs:
        assert theirs.claim_file(path, 30)
        with FileIngester(None, mine, settings, BatchOptions()) as ingester:
            outcome = ingester.process(path)
        assert outcome.status == Outcome.CLAIMED_ELSEWHERE
        record = mine.lookup(path)
        assert record.status == "claimed" and record.owner == "b" and record.attempts == 0
