"""`ingest-dir` with several writer processes on the embedded catalog (ingester.ingest.workers).

Each test starts real writer processes (fresh interpreters importing Tiled: ~10 s each), so there
are few: what two writers write equals what one writes, runs already in the catalog are left to the
one-process pass (already present, replaced across DuckDB files), writers killed mid-run lose
nothing (a rerun leaves each run once and complete), and when several are used.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ingester.config import Settings
from ingester.ingest.files import BatchOptions
from ingester.ingest.workers import MIN_FILES_PER_PROCESS, writer_processes
from support.catalog import run_state, storage_rows
from support.cli import ingest, ledger_rows
from support.corpus import EXPECTED, good_uids
from support.runfiles import write_run_file
from support.tree_compare import assert_arrays_equal, assert_tables_equal, snapshot_run


def snapshots(catalog: Path) -> dict:
    from ingester.target.targets import open_embedded

    with open_embedded(catalog) as target:
        return {uid: snapshot_run(target.root[uid], catalog) for uid in target.root}


def assert_same_runs(ours: dict, theirs: dict) -> None:
    """Same runs, metadata, nodes and data; not the same storage (which DuckDB file, dataset ids)."""
    assert ours.keys() == theirs.keys()
    for uid, run in ours.items():
        other = theirs[uid]
        assert (run.specs, run.metadata) == (other.specs, other.metadata), uid
        assert run.streams.keys() == other.streams.keys(), uid
        for name, (specs, metadata, nodes) in run.streams.items():
            other_specs, other_metadata, other_nodes = other.streams[name]
            assert (specs, metadata, nodes.keys()) == (other_specs, other_metadata, other_nodes.keys()), (uid, name)
            for key, node in nodes.items():
                where, twin = f"{uid}/{name}/{key}", other_nodes[key]
                assert (node.family, node.columns, node.shape, node.metadata) == (
                    twin.family,
                    twin.columns,
                    twin.shape,
                    twin.metadata,
                ), where
                if node.family == "table":
                    assert_tables_equal(node.data, twin.data, where)
                else:
                    assert_arrays_equal(node.data, twin.data, where)


def report_statuses(report: Path) -> dict[str, str]:
    return {Path(e["path"]).name: e["status"] for e in json.loads(report.read_text())["files"]}


def test_two_writer_processes_write_what_one_writes(spool, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert ingest(spool, "--catalog", one, "--processes", "1", "--report", tmp_path / "one.json").exit_code == 1
    result = ingest(spool, "--catalog", two, "--processes", "2", "--report", tmp_path / "two.json")
    assert result.exit_code == 1, result.output  # the refused file, as with one process
    bad = EXPECTED["bad/unknown_descriptor.jsonl"]
    assert f"{spool / 'unknown_descriptor.jsonl'}:{bad['line']}: " in result.output
    assert report_statuses(tmp_path / "two.json") == report_statuses(tmp_path / "one.json")
    assert (two / "storage-1.duckdb").is_file() and not (one / "storage-1.duckdb").exists()
    written = snapshots(two)  # opened by one process, reading both writers' DuckDB files
    assert set(written) == good_uids()
    files = {asset[0] for run in written.values() for _, _, nodes in run.streams.values()
             for node in nodes.values() for asset in node.assets if asset[0].startswith("duckdb")}  # fmt: skip
    assert files == {"duckdb://localhost/<catalog>/storage.duckdb", "duckdb://localhost/<catalog>/storage-1.duckdb"}
    assert_same_runs(written, snapshots(one))
    assert {Path(p).name: row[0] for p, row in ledger_rows(two).items()} == report_statuses(tmp_path / "two.json")
    again = ingest(spool, "--catalog", two, "--processes", "2", "--report", tmp_path / "again.json")
    assert set(report_statuses(tmp_path / "again.json").values()) == {"unchanged"}, again.output


def test_runs_already_in_the_catalog_are_left_to_one_process(spool, tmp_path):
    catalog = tmp_path / "catalog"
    (spool / "unknown_descriptor.jsonl").unlink()
    assert ingest(spool, "--catalog", catalog, "--processes", "2").exit_code == 0
    before = snapshots(catalog)
    # The same runs again under other names (already present), and every run changed (a conflict):
    # each one's tables are in one of the two DuckDB files, which only a lone process may open.
    copies = tmp_path / "copies"
    shutil.copytree(spool, copies)
    for path in copies.glob("*.jsonl"):
        path.rename(path.with_name(f"copy-{path.name}"))
    result = ingest(copies, "--catalog", catalog, "--processes", "2", "--report", tmp_path / "copies.json")
    assert result.exit_code == 0, result.output
    statuses = report_statuses(tmp_path / "copies.json")
    assert statuses == {**{n: "already-present" for n in statuses if n != "copy-no_stop.jsonl"},
                        "copy-no_stop.jsonl": "incomplete"}  # fmt: skip
    for path in spool.glob("*.jsonl"):
        path.write_text(path.read_text().replace('"exit_status": "success"', '"exit_status": "abort"'))
    refused = ingest(spool, "--catalog", catalog, "--processes", "2", "--report", tmp_path / "conflicts.json")
    assert refused.exit_code == 1 and "already in Tiled with other content" in refused.output
    replaced = ingest(spool, "--catalog", catalog, "--processes", "2", "--replace", "--report", tmp_path / "r.json")
    assert replaced.exit_code == 0, replaced.output
    assert set(report_statuses(tmp_path / "r.json").values()) == {"ingested", "incomplete"}
    after = snapshots(catalog)
    assert after.keys() == before.keys() == good_uids()
    assert all(run.metadata["stop"]["exit_status"] == "abort" for run in after.values())
    for uid, run in after.items():  # the replaced runs' rows were deleted from whichever file held them
        for name, (_, _, nodes) in run.streams.items():
            for key, node in nodes.items():
                if node.family == "table":
                    assert_tables_equal(node.data, before[uid].streams[name][2][key].data, f"{uid}/{name}/{key}")


@pytest.mark.parametrize(
    ("changes", "files", "expected"),
    [
        ({}, 4 * MIN_FILES_PER_PROCESS, 2),  # two cores (set below), enough files for both
        ({}, MIN_FILES_PER_PROCESS + 1, 1),  # not enough files to pay for a second start-up
        ({"jobs": 1}, 4 * MIN_FILES_PER_PROCESS, 1),
        ({"processes": 3}, 2, 2),  # asked for: never more processes than files
        ({"tiled_uri": "http://tiled.example"}, 1000, 1),  # a server takes concurrent writers itself
    ],
)
def test_how_many_writer_processes(monkeypatch, changes, files, expected):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    settings = Settings.model_construct(**{**Settings().model_dump(), **changes})
    assert writer_processes(settings, BatchOptions(), files) == expected
    assert writer_processes(settings, BatchOptions(dry_run=True), files) == 1


def writer_pids(parent: int) -> list[int]:
    """The writer processes `parent` spawned (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"spawn_main" in command:
            found.append(int(entry.name))
    return found


BIG = 600_000  # events of the run killed while it is written: a few seconds of appends


def test_writers_killed_mid_run_then_a_rerun_leaves_each_run_once(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from ingester.ledger.store import Ledger
    from ingester.target.targets import open_embedded

    spool, catalog = tmp_path / "spool", tmp_path / "catalog"
    spool.mkdir()
    uids = {write_run_file(spool / f"small{i}.jsonl") for i in range(3)}
    big = write_run_file(spool / "big.jsonl", events=BIG)
    uids.add(big)
    command = [sys.executable, "-m", "ingester", "ingest-dir", str(spool), "--catalog", str(catalog), "--processes",
               "2", "--report", str(tmp_path / "killed.json")]  # fmt: skip
    env = {**os.environ, "INGESTER_LEASE": "2"}  # the dead writers' claims expire 2 s after their death
    log = open(tmp_path / "killed.log", "w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while run_state(catalog, big) != "writing":  # caught while its rows are appended, from what is on disk
            assert process.poll() is None, "ingest-dir finished before the large run could be caught being written"
            assert time.monotonic() < deadline, "the large run was never written"
            time.sleep(0.02)
        writers = writer_pids(process.pid)  # the writer of the large run, and the other one if not done yet
        assert writers
        for pid in writers:
            os.kill(pid, signal.SIGKILL)
        assert process.wait(timeout=60) == 1  # the parent lives on and reports the writers' lost files
    finally:
        process.kill()
    report = {Path(e["path"]).name: e for e in json.loads((tmp_path / "killed.json").read_text())["files"]}
    assert report["big.jsonl"]["status"] == "failed"
    assert "writer process died" in report["big.jsonl"]["reason"]
    with open_embedded(catalog) as target:  # the kill left a partial run behind: the rerun must replace it
        assert target.root[big].metadata["_ingest"]["state"] == "writing"

    again = subprocess.run([*command[:-2], "--report", str(tmp_path / "again.json")], env=env, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    with open_embedded(catalog) as target:
        assert sorted(target.root) == sorted(uids)  # nothing missing, nothing twice
        states = {uid: target.root[uid].metadata["_ingest"]["state"] for uid in uids}
        assert set(states.values()) == {"complete"}, states
        assert len(target.root[big]["primary"].base["internal"].read()) == BIG
    assert storage_rows(catalog) == BIG + 3 * 5  # the killed write's rows were removed with its run
    with Ledger.open(f"sqlite:///{catalog / 'ledger.db'}", str(catalog.absolute())) as book:
        assert {Path(r.path).name: r.status for r in book.files()} == {
            **{f"small{i}.jsonl": "ingested" for i in range(3)},
            "big.jsonl": "ingested",
        }
