"""ingester.ledger (store, records, schema), every test on SQLite and on PostgreSQL.

The PostgreSQL variant needs a server: its URL comes from INGESTER_TEST_POSTGRES_URL (for example
postgresql://postgres@127.0.0.1:5432/test). Unset, the variant is skipped; set but unreachable, the
test fails. Each PostgreSQL test gets a fresh schema of its own, dropped afterwards.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy.engine import make_url

from ingester.ledger.records import CLAIMED
from ingester.ledger.schema import LedgerSchemaError, normalize_url
from ingester.ledger.store import Ledger
from ingester.status import RECORDED, RETRYABLE, Outcome

POSTGRES_ENV = "INGESTER_TEST_POSTGRES_URL"
LEASE = 0.5


def unchanged(ledger: Ledger, path, size: int, mtime_ns: int) -> bool:
    """Whether the ledger settled the file with this size and mtime (what a pass skips)."""
    record = ledger.lookup(path)
    return record is not None and record.settles(size, mtime_ns)


class Ledgers:
    """Opens ledgers on one fresh database and closes them all afterwards.

    The PostgreSQL schema is created on first use, inside the test, so that an unreachable server
    fails the test rather than erroring its setup.
    """

    def __init__(self, backend: str, make_database):
        self.backend = backend
        self._make_database = make_database
        self._url: str | None = None
        self._open: list[Ledger] = []

    @property
    def created(self) -> bool:
        return self._url is not None

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = self._make_database()
        return self._url

    def __call__(self, target: str = "catalog", worker_id: str = "w1", **kwargs) -> Ledger:
        ledger = Ledger.open(self.url, target, worker_id=worker_id, **kwargs)
        self._open.append(ledger)
        return ledger

    def close_all(self) -> None:
        for ledger in self._open:
            ledger.close()


def _postgres_database(base: str, schema: str):
    libpq = make_url(base).set(drivername="postgresql")

    def create() -> str:
        with psycopg.connect(libpq.render_as_string(hide_password=False), connect_timeout=10, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        return libpq.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)

    def drop() -> None:
        with psycopg.connect(libpq.render_as_string(hide_password=False), connect_timeout=10, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    return create, drop


@pytest.fixture(params=["sqlite", "postgresql"])
def ledgers(request, tmp_path):
    if request.param == "sqlite":
        factory = Ledgers("sqlite", lambda: f"sqlite:///{tmp_path}/catalog/ledger.db")
        yield factory
        factory.close_all()
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} not set")
    create, drop = _postgres_database(base, f"ledger_test_{uuid.uuid4().hex[:16]}")
    factory = Ledgers("postgresql", create)
    yield factory
    factory.close_all()
    if factory.created:
        drop()


def record(ledger: Ledger, path, status="ingested", size=10, mtime_ns=1_000, **kwargs) -> None:
    ledger.record_file(path, size=size, mtime_ns=mtime_ns, hash="sha256:ab", status=status, **kwargs)


# --- records ------------------------------------------------------------------------------------


def test_record_and_lookup_round_trip(ledgers, tmp_path):
    ledger = ledgers()
    path = tmp_path / "run.jsonl"
    assert ledger.lookup(path) is None
    before = datetime.now(UTC)
    ledger.record_file(
        path, size=123, mtime_ns=1_700_000_000_123_456_789, hash="sha256:00ff", status=Outcome.REFUSED,
        reason="event before descriptor", line=7, runs=["uid-1", "uid-2"],
    )  # fmt: skip
    found = ledger.lookup(str(path))
    assert found is not None
    assert (found.target, found.path, found.size, found.mtime_ns, found.hash) == (
        "catalog",
        str(path),
        123,
        1_700_000_000_123_456_789,
        "sha256:00ff",
    )
    assert (found.status, found.reason, found.line) == ("refused", "event before descriptor", 7)
    assert found.runs == ("uid-1", "uid-2")
    assert found.attempts == 1 and found.owner is None and found.lease_until is None
    for moment in (found.first_seen, found.last_seen, found.last_attempt):
        assert moment.tzinfo is not None and before <= moment <= datetime.now(UTC)


def test_relative_paths_are_recorded_absolute(ledgers, tmp_path, monkeypatch):
    ledger = ledgers()
    monkeypatch.chdir(tmp_path)
    record(ledger, "sub/run.jsonl")
    assert ledger.lookup(tmp_path / "sub" / "run.jsonl").path == str(tmp_path / "sub" / "run.jsonl")


def test_unchanged_detection(ledgers, tmp_path):
    ledger = ledgers()
    path = tmp_path / "run.jsonl"
    assert not unchanged(ledger, path, 10, 1_000)
    record(ledger, path, size=10, mtime_ns=1_000)
    assert unchanged(ledger, path, 10, 1_000)
    assert not unchanged(ledger, path, 11, 1_000)
    assert not unchanged(ledger, path, 10, 1_001)
    for status in RECORDED:
        record(ledger, path, status=status)
        assert unchanged(ledger, path, 10, 1_000), status
    claimed_only = tmp_path / "claimed.jsonl"
    assert ledger.claim_file(claimed_only, 30)
    assert ledger.lookup(claimed_only).status == CLAIMED
    assert not unchanged(ledger, claimed_only, 0, 0)


def test_settled_files_in_one_query(ledgers, tmp_path):
    ledger = ledgers()
    same, grown, refused, claimed, unknown = (tmp_path / f"{n}.jsonl" for n in ("same", "grown", "refused", "c", "u"))
    record(ledger, same, size=10, mtime_ns=1_000)
    record(ledger, grown, size=10, mtime_ns=1_000)
    record(ledger, refused, status="refused", size=5, mtime_ns=7)
    assert ledger.claim_file(claimed, 30)
    ledgers(target="elsewhere").record_file(unknown, size=1, mtime_ns=1, hash="h", status="ingested")
    asked = [(same, 10, 1_000), (str(grown), 11, 1_000), (refused, 5, 7), (claimed, 0, 0), (unknown, 1, 1)]
    assert ledger.settled(asked) == {str(same): "ingested", str(refused): "refused"}
    assert ledger.settled([]) == {}


def test_touch_all_updates_last_seen_only(ledgers, tmp_path):
    ledger = ledgers()
    paths = [tmp_path / f"run-{i}.jsonl" for i in range(1203)]  # more than one chunk of the IN list
    for path in paths[:3]:
        record(ledger, path)
    before = {path: ledger.lookup(path) for path in paths[:3]}
    ledger.touch_all(paths)
    for path, old in before.items():
        new = ledger.lookup(path)
        assert new.last_seen > old.last_seen
        assert (new.status, new.attempts, new.last_attempt) == (old.status, old.attempts, old.last_attempt)
    assert ledger.lookup(paths[3]) is None  # touching never creates a record


def test_unknown_status_is_refused(ledgers, tmp_path):
    ledger = ledgers()
    with pytest.raises(ValueError, match="unknown ledger status"):
        record(ledger, tmp_path / "run.jsonl", status="done")
    with pytest.raises(ValueError, match="unknown ledger status"):
        ledger.record_run("uid", tmp_path / "run.jsonl", CLAIMED)


def test_targets_are_separate(ledgers, tmp_path):
    path = tmp_path / "run.jsonl"
    embedded, remote = ledgers(target="/data/ingester-catalog"), ledgers(target="http://tiled:8000/api")
    record(embedded, path)
    embedded.record_run("uid-1", path, "ingested")
    assert remote.lookup(path) is None and not unchanged(remote, path, 10, 1_000)
    assert remote.summary() == {} and remote.files() == [] and remote.lookup_run("uid-1") is None
    assert embedded.claim_file(path, 30) and remote.claim_file(path, 30)
    assert embedded.summary() == {"ingested": 1}


def test_summary_and_files_by_status(ledgers, tmp_path):
    ledger = ledgers()
    statuses = dict(a="ingested", b="failed", c="refused", d="ingested", e="incomplete", f="already-present")
    for name, status in statuses.items():
        record(ledger, tmp_path / f"{name}.jsonl", status=status)
    assert ledger.summary() == {"already-present": 1, "failed": 1, "incomplete": 1, "ingested": 2, "refused": 1}
    assert [f.path for f in ledger.files("failed")] == [str(tmp_path / "b.jsonl")]
    assert [f.path for f in ledger.files(RETRYABLE)] == [str(tmp_path / "b.jsonl"), str(tmp_path / "c.jsonl")]
    assert [f.path for f in ledger.files()] == [str(tmp_path / f"{name}.jsonl") for name in sorted(statuses)]


def test_attempts_increment_and_touch(ledgers, tmp_path):
    ledger = ledgers()
    path = tmp_path / "run.jsonl"
    record(ledger, path, status="failed", reason="server down")
    first = ledger.lookup(path)
    record(ledger, path, status="ingested")
    second = ledger.lookup(path)
    assert (first.attempts, second.attempts) == (1, 2)
    assert second.first_seen == first.first_seen and second.last_attempt > first.last_attempt
    assert second.status == "ingested" and second.reason is None
    assert ledger.touch(path) and not ledger.touch(tmp_path / "unknown.jsonl")
    touched = ledger.lookup(path)
    assert touched.attempts == 2 and touched.last_attempt == second.last_attempt
    assert touched.last_seen > second.last_seen

    ledger.record_run("uid-1", path, "failed", reason="timeout", line=3)
    ledger.record_run("uid-1", path, "ingested")
    run = ledger.lookup_run("uid-1")
    assert (run.path, run.status, run.reason, run.line, run.attempts) == (str(path), "ingested", None, None, 2)
    assert [r.uid for r in ledger.runs("ingested")] == ["uid-1"] and ledger.runs("failed") == []


def test_records_survive_reopening(ledgers, tmp_path):
    first = ledgers()
    record(first, tmp_path / "run.jsonl")
    first.close()
    again = ledgers()
    assert unchanged(again, tmp_path / "run.jsonl", 10, 1_000)


def test_other_schema_version_is_refused(ledgers):
    ledger = ledgers()
    with ledger._engine.begin() as connection:
        connection.exec_driver_sql("UPDATE ledger_meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(LedgerSchemaError, match="version 999"):
        ledgers()


def test_bare_postgresql_urls_get_the_psycopg_driver():
    assert normalize_url("postgresql://postgres@db:5432/test") == "postgresql+psycopg://postgres@db:5432/test"
    assert normalize_url("postgres://postgres@db/test") == "postgresql+psycopg://postgres@db/test"
    assert normalize_url("sqlite:///x/ledger.db") == "sqlite:///x/ledger.db"


# --- claims -------------------------------------------------------------------------------------


def test_claim_is_exclusive_until_released(ledgers, tmp_path):
    path = tmp_path / "run.jsonl"
    one, two = ledgers(worker_id="host-a:1"), ledgers(worker_id="host-b:2")
    assert one.claim_file(path, 30)
    assert not two.claim_file(path, 30)
    assert one.claim_file(path, 30), "a worker may extend its own claim"
    assert not two.release(path) and not two.renew(path, 30)
    assert one.renew(path, 30) and one.release(path)
    assert one.lookup(path) is None, "a row only a claim placed goes with the claim"
    assert two.claim_file(path, 30) and not one.claim_file(path, 30)


def test_expired_lease_is_taken_over(ledgers, tmp_path):
    path = tmp_path / "run.jsonl"
    one, two = ledgers(worker_id="host-a:1"), ledgers(worker_id="host-b:2")
    assert one.claim_file(path, LEASE) and one.claim_run("uid-1", LEASE, path=path)
    assert not two.claim_file(path, LEASE) and not two.claim_run("uid-1", LEASE)
    time.sleep(LEASE + 0.1)
    assert two.claim_file(path, 30) and two.claim_run("uid-1", 30)
    assert not one.renew(path, 30) and not one.renew_run("uid-1", 30), "a lost lease cannot be renewed"
    assert not one.release(path) and not one.release_run("uid-1")
    assert one.lookup(path).owner == "host-b:2" and one.lookup_run("uid-1").owner == "host-b:2"


def test_release_keeps_the_recorded_outcome(ledgers, tmp_path):
    path = tmp_path / "run.jsonl"
    ledger = ledgers()
    assert ledger.claim_file(path, 30) and ledger.claim_run("uid-1", 30, path=path)
    record(ledger, path, runs=["uid-1"])
    ledger.record_run("uid-1", path, "ingested")
    assert ledger.lookup(path).owner == "w1", "recording leaves the claim alone"
    assert ledger.release(path) and ledger.release_run("uid-1")
    found, run = ledger.lookup(path), ledger.lookup_run("uid-1")
    assert (found.status, found.owner, found.lease_until, found.attempts) == ("ingested", None, None, 1)
    assert (run.status, run.owner, run.lease_until, run.attempts) == ("ingested", None, None, 1)


def test_run_claims_are_exclusive(ledgers):
    one, two = ledgers(worker_id="host-a:1"), ledgers(worker_id="host-b:2")
    assert one.claim_run("uid-1", 30) and not two.claim_run("uid-1", 30)
    assert two.claim_run("uid-2", 30)
    assert one.release_run("uid-1") and two.claim_run("uid-1", 30)
    assert one.lookup_run("uid-1").status == CLAIMED


def test_leases_must_be_positive(ledgers, tmp_path):
    with pytest.raises(ValueError, match="positive"):
        ledgers().claim_file(tmp_path / "run.jsonl", 0)


def test_concurrent_claims_from_threads_have_one_winner(ledgers, tmp_path):
    workers = [ledgers(worker_id=f"host:{n}") for n in range(8)]
    for round_ in range(3):
        path, uid = tmp_path / f"run-{round_}.jsonl", f"uid-{round_}"
        start = threading.Barrier(len(workers))

        def claim(ledger: Ledger, path=path, uid=uid, start=start) -> tuple[bool, bool]:
            start.wait()
            return ledger.claim_file(path, 30), ledger.claim_run(uid, 30)

        with ThreadPoolExecutor(len(workers)) as pool:
            results = list(pool.map(claim, workers))
        assert sum(won_file for won_file, _ in results) == 1
        assert sum(won_run for _, won_run in results) == 1


def test_one_ledger_shared_by_threads(ledgers, tmp_path):
    ledger = ledgers()
    shared = tmp_path / "shared.jsonl"

    def work(n: int) -> None:
        for i in range(10):
            ledger.record_run(f"uid-{n}-{i}", shared, "ingested")
            record(ledger, shared, status="failed")
            ledger.heartbeat(f"thread {n} run {i}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    assert len(ledger.runs()) == 80
    assert ledger.lookup(shared).attempts == 80


def _claim_in_process(url, worker_id, path, uid, start, results) -> None:
    with Ledger.open(url, "catalog", worker_id=worker_id) as ledger:
        start.wait(timeout=30)
        results.put((worker_id, ledger.claim_file(path, 30), ledger.claim_run(uid, 30)))


def test_concurrent_claims_from_processes_have_one_winner(ledgers, tmp_path):
    url = ledgers.url
    ledgers().summary()  # the tables exist before the processes race for the rows
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(2), context.Queue()
    path = str(tmp_path / "run.jsonl")
    processes = [
        context.Process(target=_claim_in_process, args=(url, f"proc:{n}", path, "uid-1", start, results))
        for n in range(2)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert sum(won_file for _, won_file, _ in outcomes) == 1
    assert sum(won_run for _, _, won_run in outcomes) == 1
    winner = next(worker for worker, won_file, _ in outcomes if won_file)
    assert ledgers().lookup(tmp_path / "run.jsonl").owner == winner


# --- workers ------------------------------------------------------------------------------------


def test_heartbeat_is_visible_from_another_ledger(ledgers):
    watcher = ledgers(worker_id="host-a:41", command="watch")
    observer = ledgers(worker_id="host-b:42")
    ledgers(target="elsewhere", worker_id="host-c:43").heartbeat("idle")
    assert observer.workers() == []
    watcher.heartbeat("scanning /data", scanned=True)
    (seen,) = observer.workers()
    assert (seen.worker_id, seen.target, seen.command) == ("host-a:41", "catalog", "watch")
    assert seen.state == "scanning /data"
    assert seen.pid == os.getpid() and seen.host and seen.last_scan == seen.heartbeat
    assert seen.started <= seen.heartbeat
    watcher.heartbeat("waiting for changes")
    (later,) = observer.workers()
    assert later.state == "waiting for changes" and later.heartbeat > seen.heartbeat
    assert later.last_scan == seen.last_scan and later.started == seen.started
