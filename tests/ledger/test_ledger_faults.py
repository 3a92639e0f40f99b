"""`status` and `retry` when the ledger itself is the problem: one line and exit 2, never a traceback;
and `status` only reads, so it never waits for a writer."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from support.cli import ingest, run_ingester
from support.runfiles import write_run_file


@pytest.fixture
def catalog(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    write_run_file(spool / "run.jsonl")
    assert ingest(spool, "--catalog", tmp_path / "catalog").exit_code == 0
    return tmp_path / "catalog"


def one_line_exit_2(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


@pytest.mark.parametrize("command", ["status", "retry"])
def test_a_corrupt_ledger_is_said_in_one_line(command, catalog):
    (catalog / "ledger.db").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (catalog / f"ledger.db{suffix}").unlink(missing_ok=True)
    assert "file is not a database" in one_line_exit_2(run_ingester(command, "--catalog", catalog))


@pytest.mark.parametrize("command", ["status", "retry"])
def test_a_wrong_ledger_url_is_said_in_one_line(command, tmp_path):
    assert "ledger" in one_line_exit_2(run_ingester(command, "--ledger", "nosuchdb://x/y"))


def test_status_of_a_catalog_that_is_not_there_creates_nothing(tmp_path):
    assert "no ledger" in one_line_exit_2(run_ingester("status", "--catalog", tmp_path / "none"))
    assert not (tmp_path / "none").exists()


def test_status_reads_while_a_writer_holds_the_ledger(catalog):
    held, release = threading.Event(), threading.Event()

    def writer() -> None:  # another ingester in the middle of a write transaction
        db = sqlite3.connect(catalog / "ledger.db", isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE ledger_files SET last_seen = last_seen")
        held.set()
        release.wait(60)
        db.execute("ROLLBACK")
        db.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        result = run_ingester("status", "--catalog", catalog, timeout=60)
        took = time.monotonic() - started
    finally:
        release.set()
        thread.join()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ingested" in result.stdout
    assert took < 20  # not the 30 s a write lock would have waited (the process's start-up is most of it)
