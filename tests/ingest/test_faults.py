"""`ingest-dir` and `retry` under faults, as real processes: signals, a catalog in use, files that move.

Each test drives the processes from what can be seen on disk (the ledger, the catalog's own
database), never from how long something should take.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ingester.ledger.store import Ledger
from support.catalog import run_state, storage_rows
from support.cli import run_ingester, start_ingester
from support.runfiles import write_many_runs, write_run_file
from support.servers import wait_for

BIG = 600_000  # events: a few seconds of appends, long enough to be caught while written


def ledger_files(catalog: Path) -> dict[str, tuple[str, int | None, str | None]]:
    """path name -> (status, size, hash), as the ledger of the embedded catalog says."""
    if not (catalog / "ledger.db").is_file():
        return {}
    with Ledger.open(f"sqlite:///{catalog / 'ledger.db'}", str(catalog.absolute())) as book:
        return {Path(r.path).name: (r.status, r.size, r.hash) for r in book.files()}


def catalog_runs(catalog: Path) -> dict[str, str]:
    """uid -> state of every run in the catalog (read from its database, as run_state does)."""
    import sqlite3

    with sqlite3.connect(f"file:{catalog / 'catalog.db'}?mode=ro", uri=True) as db:
        keys = [
            key
            for (key,) in db.execute("SELECT key FROM nodes WHERE parent = (SELECT id FROM nodes WHERE parent IS NULL)")
        ]
    return {key: run_state(catalog, key) for key in keys}


def test_sigint_stops_taking_files_exits_130_and_a_rerun_finishes(tmp_path):
    spool, catalog = tmp_path / "spool", tmp_path / "catalog"
    spool.mkdir()
    uids = {write_run_file(spool / f"run{i:02d}.jsonl") for i in range(40)}
    process = start_ingester(tmp_path / "first.log", "ingest-dir", spool, "--catalog", catalog, "--jobs", "1",
                             "--report", tmp_path / "first.json")  # fmt: skip
    try:
        wait_for(lambda: len(ledger_files(catalog)) >= 3, timeout=120, what="the first files ingested")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 130
    finally:
        process.kill()
    output = (tmp_path / "first.log").read_text()
    assert "stopped by SIGINT" in output and "Traceback" not in output, output[-2000:]
    entries = {Path(e["path"]).name: e["status"] for e in json.loads((tmp_path / "first.json").read_text())["files"]}
    done = {name for name, status in entries.items() if status == "ingested"}
    left = {name for name, status in entries.items() if status == "interrupted"}
    assert done and left and done | left == set(entries) and len(entries) == 40
    assert {name for name, (status, _, _) in ledger_files(catalog).items()} == done  # what was left: not recorded
    assert set(catalog_runs(catalog).values()) == {"complete"}  # no run half-written

    again = run_ingester("ingest-dir", spool, "--catalog", catalog)
    assert again.returncode == 0, again.stdout + again.stderr
    assert set(catalog_runs(catalog)) == uids
    assert {status for status, _, _ in ledger_files(catalog).values()} == {"ingested"}


def test_sigterm_stops_between_the_runs_of_one_file_with_143(tmp_path):
    spool, catalog = tmp_path / "spool", tmp_path / "catalog"
    spool.mkdir()
    uids = write_many_runs(spool / "many.jsonl", 150)
    process = start_ingester(tmp_path / "first.log", "ingest-dir", spool, "--catalog", catalog)
    try:
        wait_for(lambda: len(catalog_runs(catalog)) >= 5, timeout=120, what="the first runs of the file in Tiled")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 143
    finally:
        process.kill()
    written = catalog_runs(catalog)
    assert 5 <= len(written) < 150 and set(written.values()) == {"complete"}
    assert ledger_files(catalog) == {}  # the file was not wholly looked at: the next pass reads it again
    again = run_ingester("ingest-dir", spool, "--catalog", catalog)
    assert again.returncode == 0, again.stdout + again.stderr
    assert set(catalog_runs(catalog)) == set(uids)
    assert ledger_files(catalog)["many.jsonl"][0] == "ingested"


def test_a_second_sigint_aborts_at_once_and_nothing_is_left_half_written(tmp_path):
    spool, catalog = tmp_path / "spool", tmp_path / "catalog"
    spool.mkdir()
    small = {write_run_file(spool / f"small{i}.jsonl") for i in range(2)}
    big = write_run_file(spool / "big.jsonl", events=BIG)
    process = start_ingester(tmp_path / "first.log", "ingest-dir", spool, "--catalog", catalog)
    try:
        deadline = time.monotonic() + 180
        while run_state(catalog, big) != "writing":
            assert process.poll() is None, "ingest-dir finished before the large run could be caught being written"
            assert time.monotonic() < deadline, "the large run was never written"
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
    finally:
        process.kill()
    assert "aborted" in (tmp_path / "first.log").read_text()
    assert run_state(catalog, big) in ("writing", None)  # never complete: replaced by the next pass

    again = run_ingester("ingest-dir", spool, "--catalog", catalog)
    assert again.returncode == 0, again.stdout + again.stderr
    retried = run_ingester("retry", "--catalog", catalog)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert catalog_runs(catalog) == {uid: "complete" for uid in {*small, big}}
    assert storage_rows(catalog) == BIG + 2 * 5  # no orphan rows of the aborted write


def test_a_second_ingester_on_a_catalog_in_use_exits_2_naming_the_holder(tmp_path):
    spool, other, catalog = tmp_path / "spool", tmp_path / "other", tmp_path / "catalog"
    spool.mkdir()
    other.mkdir()
    watched = write_run_file(spool / "watched.jsonl")
    files = {write_run_file(other / f"run{i}.jsonl") for i in range(3)}
    first = start_ingester(tmp_path / "watch.log", "watch", spool, "--catalog", catalog, "--settle", "0.5")
    try:  # a watcher holds its catalog as long as it runs
        wait_for(lambda: run_state(catalog, watched) == "complete", timeout=120, what="the watcher's first run")
        second = run_ingester("ingest-dir", other, "--catalog", catalog, timeout=120)
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"in use by process {first.pid}" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
    finally:
        first.kill()
    assert {name for name in ledger_files(catalog)} == {"watched.jsonl"}  # nothing recorded, nothing failed
    again = run_ingester("ingest-dir", other, "--catalog", catalog)  # once it is free
    assert again.returncode == 0, again.stdout + again.stderr
    assert set(catalog_runs(catalog)) == {watched, *files}


def test_a_file_deleted_once_read_is_ingested_from_what_was_read(tmp_path):
    spool, catalog = tmp_path / "spool", tmp_path / "catalog"
    spool.mkdir()
    path = spool / "big.jsonl"
    big = write_run_file(path, events=BIG)
    data = path.read_bytes()
    process = start_ingester(tmp_path / "first.log", "ingest-dir", spool, "--catalog", catalog)
    try:
        deadline = time.monotonic() + 180
        while run_state(catalog, big) != "writing":  # written only once the whole file was read
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()
            time.sleep(0.02)
        path.unlink()
        assert process.wait(timeout=300) == 0, (tmp_path / "first.log").read_text()
    finally:
        process.kill()
    assert run_state(catalog, big) == "complete"
    status, size, digest = ledger_files(catalog)["big.jsonl"]
    assert (status, size, digest) == ("ingested", len(data), "sha256:" + hashlib.sha256(data).hexdigest())


def test_a_file_replaced_once_read_is_recorded_as_read_and_looked_at_again(tmp_path):
    spool, catalog = tmp_path / "spool", tmp_path / "catalog"
    spool.mkdir()
    path = spool / "big.jsonl"
    big = write_run_file(path, events=BIG)
    data = path.read_bytes()
    other = write_run_file(tmp_path / "other.jsonl", events=20)
    process = start_ingester(tmp_path / "first.log", "ingest-dir", spool, "--catalog", catalog)
    try:
        deadline = time.monotonic() + 180
        while run_state(catalog, big) != "writing":
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()
            time.sleep(0.02)
        (tmp_path / "other.jsonl").replace(path)  # another run file takes its name
        assert process.wait(timeout=300) == 0, (tmp_path / "first.log").read_text()
    finally:
        process.kill()
    _, size, digest = ledger_files(catalog)["big.jsonl"]
    assert (size, digest) == (len(data), "sha256:" + hashlib.sha256(data).hexdigest())  # what was read, whole
    again = run_ingester("ingest-dir", spool, "--catalog", catalog)
    assert again.returncode == 0, again.stdout + again.stderr
    assert catalog_runs(catalog) == {big: "complete", other: "complete"}


def test_a_dead_ingester_of_this_host_has_its_claim_taken_over_at_once(tmp_path):
    spool, catalog = tmp_path / "spool", tmp_path / "catalog"
    spool.mkdir()
    path = spool / "run.jsonl"
    uid = write_run_file(path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    owner = f"{socket.gethostname()}:{int(dead.stdout)}"  # a process of this host, gone
    catalog.mkdir()
    with Ledger.open(f"sqlite:///{catalog / 'ledger.db'}", str(catalog.absolute()), worker_id=owner) as book:
        assert book.claim_file(path, 3600)  # an hour's lease it will never give back
    started = time.monotonic()
    result = run_ingester("ingest-dir", spool, "--catalog", catalog, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 60  # not a lease's wait
    assert catalog_runs(catalog) == {uid: "complete"}
    assert ledger_files(catalog)["run.jsonl"][0] == "ingested"


def test_writer_processes_stop_with_their_parent_on_sigint(tmp_path):
    spool, catalog = tmp_path / "spool", tmp_path / "catalog"
    spool.mkdir()
    uids = {write_run_file(spool / f"run{i:03d}.jsonl") for i in range(120)}
    process = start_ingester(tmp_path / "first.log", "ingest-dir", spool, "--catalog", catalog, "--processes", "2",
                             "--jobs", "2", "--report", tmp_path / "first.json", own_group=True)  # fmt: skip
    try:
        wait_for(lambda: len(ledger_files(catalog)) >= 5, timeout=180, what="the writers' first files")
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal: the parent and its writers get it
        assert process.wait(timeout=180) == 130, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        process.kill()
    entries = {Path(e["path"]).name: e["status"] for e in json.loads((tmp_path / "first.json").read_text())["files"]}
    assert "interrupted" in entries.values() and "ingested" in entries.values()
    assert set(entries.values()) <= {"ingested", "interrupted"}, entries
    assert set(catalog_runs(catalog).values()) == {"complete"}
    again = run_ingester("ingest-dir", spool, "--catalog", catalog, "--processes", "2", timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert set(catalog_runs(catalog)) == uids
