"""`ingest-dir` with several writer processes on the embedded catalog (ingester.workers).

Each test starts real writer processes (fresh interpreters importing Tiled: ~10 s each), so there
are few: what two writers write equals what one writes, runs already in the catalog are left to the
one-process pass (already present, replaced across DuckDB files), and when several are used.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tree_compare import assert_arrays_equal, assert_tables_equal, snapshot_run

from ingester.batch import BatchOptions
from ingester.config import Settings
from ingester.workers import MIN_FILES_PER_PROCESS, writer_processes
from test_ingest_dir import EXPECTED, good_uids, ingest, ledger_rows, spool  # noqa: F401  (spool: a fixture)


def snapshots(catalog: Path) -> dict:
    from ingester.target import open_embedded

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
                    twin.family, twin.columns, twin.shape, twin.metadata
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
