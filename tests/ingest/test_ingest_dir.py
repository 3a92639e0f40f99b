"""`ingester ingest-dir` as beamline staff use it: repeatable, reported, never losing anything."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ingester.cli.app import app
from support.cli import catalog_uids, ingest, ledger_rows, runner
from support.corpus import EXPECTED, FIXTURES, good_uids


def test_first_pass_ingests_reports_and_exits_1_for_the_refused_file(spool, tmp_path):
    catalog, report = tmp_path / "catalog", tmp_path / "report.json"
    result = ingest(spool, "--catalog", catalog, "--report", report, "--jobs", "2")
    assert result.exit_code == 1, result.output
    bad = EXPECTED["bad/unknown_descriptor.jsonl"]
    assert f"{spool / 'unknown_descriptor.jsonl'}:{bad['line']}: " in result.output
    assert catalog_uids(catalog) == good_uids()
    entries = {Path(e["path"]).name: e for e in json.loads(report.read_text())["files"]}
    assert entries["two_runs.jsonl"]["status"] == "ingested" and len(entries["two_runs.jsonl"]["runs"]) == 2
    assert entries["unknown_descriptor.jsonl"]["status"] == "refused"
    assert entries["unknown_descriptor.jsonl"]["line"] == bad["line"]
    assert "unknown descriptor" in entries["unknown_descriptor.jsonl"]["reason"]
    assert entries["no_stop.jsonl"]["status"] == "incomplete"
    rows = ledger_rows(catalog)
    assert {Path(p).name: row[0] for p, row in rows.items()} == {n: e["status"] for n, e in entries.items()}


def test_second_pass_writes_nothing_and_only_touches_last_seen(spool, tmp_path):
    catalog = tmp_path / "catalog"
    ingest(spool, "--catalog", catalog)
    before = ledger_rows(catalog)
    result = ingest(spool, "--catalog", catalog, "--report", tmp_path / "again.json")
    assert result.exit_code == 1, result.output  # the bad file is unchanged: still refused, still said so
    assert ledger_rows(catalog) == before
    entries = json.loads((tmp_path / "again.json").read_text())["files"]
    assert {e["status"] for e in entries} == {"unchanged"}


def test_a_grown_file_is_picked_up(spool, tmp_path):
    catalog = tmp_path / "catalog"
    partial = spool / "no_stop.jsonl"
    ingest(spool, "--catalog", catalog)
    uid = EXPECTED["incomplete/no_stop.jsonl"].get("uid")
    complete = FIXTURES / "good" / "scan_baseline.jsonl"
    # The run gets its stop: the file grows to the complete run (same uid as its source)
    shutil.copy(complete, partial)
    ingest(spool, "--catalog", catalog)
    assert EXPECTED["good/scan_baseline.jsonl"]["uid"] in catalog_uids(catalog)
    assert ledger_rows(catalog)[str(partial)][0] in ("ingested", "already-present")
    del uid


def test_dry_run_writes_nothing(spool, tmp_path):
    catalog = tmp_path / "catalog"
    result = ingest(spool, "--catalog", catalog, "--dry-run")
    assert result.exit_code == 1  # the bad file is still reported
    assert "dry run" in result.output
    assert catalog_uids(catalog) == set()
    assert ledger_rows(catalog) == {}


def test_same_uid_different_content_is_a_conflict_unless_replace(spool, tmp_path):
    catalog = tmp_path / "catalog"
    ingest(spool / "scan_baseline.jsonl", "--catalog", catalog)
    changed = tmp_path / "changed" / "scan_baseline.jsonl"
    changed.parent.mkdir()
    lines = (spool / "scan_baseline.jsonl").read_text().splitlines(keepends=True)
    last_event = max(i for i, line in enumerate(lines) if line.startswith('["event"'))
    changed.write_text("".join(lines[:last_event] + lines[last_event + 1 :]))  # one row fewer, same uid
    result = ingest(changed, "--catalog", catalog)
    assert result.exit_code == 1
    assert "conflict" in result.output
    result = ingest(changed, "--catalog", catalog, "--replace")
    assert result.exit_code == 0, result.output
    uid = EXPECTED["good/scan_baseline.jsonl"]["uid"]
    from ingester.target.targets import open_embedded

    with open_embedded(catalog) as target:
        assert target.root[uid].metadata["_ingest"]["source"]["path"] == str(changed.absolute())


def test_same_run_in_another_file_is_already_present(spool, tmp_path):
    catalog = tmp_path / "catalog"
    ingest(spool / "scan_baseline.jsonl", "--catalog", catalog)
    copy = tmp_path / "copy.jsonl"
    shutil.copy(spool / "scan_baseline.jsonl", copy)
    result = ingest(copy, "--catalog", catalog, "--report", tmp_path / "r.json")
    assert result.exit_code == 0
    (entry,) = json.loads((tmp_path / "r.json").read_text())["files"]
    assert entry["status"] == "already-present"


def test_move_done_moves_only_ingested_files_and_never_overwrites(spool, tmp_path):
    catalog, done = tmp_path / "catalog", tmp_path / "done"
    done.mkdir()
    (done / "scan_baseline.jsonl").write_text("an older file with the same name\n")
    ingest(spool, "--catalog", catalog, "--move-done", done)
    assert not (spool / "scan_baseline.jsonl").exists()
    assert (done / "scan_baseline.jsonl").read_text() == "an older file with the same name\n"
    assert (done / "scan_baseline.1.jsonl").exists()
    assert (spool / "unknown_descriptor.jsonl").exists() and (spool / "no_stop.jsonl").exists()


def test_status_and_retry_after_fixing_a_data_root(tmp_path):
    catalog = tmp_path / "catalog"
    moved = tmp_path / "moved"
    shutil.copytree(FIXTURES / "moved", moved)
    assert ingest(moved, "--catalog", catalog).exit_code == 1
    result = runner.invoke(app, ["status", "--catalog", str(catalog), "--failed"])
    assert result.exit_code == 0
    assert "refused" in result.output and "escapes the data roots" in result.output
    result = runner.invoke(
        app, ["retry", "--catalog", str(catalog), "--root-map", f"/nsls2/data/tst/proposals/2024={moved}"]
    )
    assert result.exit_code == 0, result.output
    assert len(catalog_uids(catalog)) == 3
    status = runner.invoke(app, ["status", "--catalog", str(catalog)]).output
    assert "ingested" in status and "refused" not in status


def test_usage_errors_exit_2(tmp_path):
    assert ingest(tmp_path / "nope").exit_code == 2
    assert ingest(tmp_path, "--root-map", "no-equals-sign").exit_code == 2
    bad_config = tmp_path / "ingester.toml"
    bad_config.write_text("jobs = 'many'\n")
    assert ingest(tmp_path, "--config", bad_config).exit_code == 2


def test_settled_folder_is_skipped_without_opening_the_target(tmp_path):
    """A pass where the ledger settles every file does not open the catalog at all (opening it
    would create a fresh catalog.db where the real one was moved away); a new file does."""
    catalog = tmp_path / "catalog"
    first = ingest(FIXTURES / "good", "--catalog", catalog)
    assert first.exit_code == 0, first.output
    (catalog / "catalog.db").rename(tmp_path / "catalog.db.away")
    again = ingest(FIXTURES / "good", "--catalog", catalog, "--report", tmp_path / "again.json")
    assert again.exit_code == 0, again.output
    entries = json.loads((tmp_path / "again.json").read_text())["files"]
    assert len(entries) == len(list((FIXTURES / "good").glob("*.json*")))
    assert {entry["status"] for entry in entries} == {"unchanged"}
    assert not (catalog / "catalog.db").exists()
    new = tmp_path / "new" / "run.jsonl"
    new.parent.mkdir()
    shutil.copy(FIXTURES / "good" / "scan_baseline.jsonl", new)
    assert ingest(new, "--catalog", catalog).exit_code == 0
    assert (catalog / "catalog.db").exists()


def test_unreachable_server_exits_2(tmp_path, monkeypatch):
    monkeypatch.setenv("TILED_API_KEY", "secret0key")
    result = ingest(
        FIXTURES / "good" / "scan_baseline.jsonl",
        "--tiled-uri",
        "http://127.0.0.1:9",
        "--ledger",
        f"sqlite:///{tmp_path / 'l.db'}",
    )
    assert result.exit_code == 2
    assert "secret0key" not in result.output
