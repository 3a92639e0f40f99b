"""`ingest-dir`'s selection and configuration: `--limit`, `--since`, plain progress lines, and the TOML
file, `INGESTER_*` variables and flags, in that order of precedence."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from ingester.config import load_settings
from support.cli import catalog_uids, ingest
from support.runfiles import write_run_file


def small_runs(folder: Path, count: int) -> dict[str, str]:
    folder.mkdir()
    return {f"run{i}.jsonl": write_run_file(folder / f"run{i}.jsonl") for i in range(count)}


def report_entries(report: Path) -> dict[str, dict]:
    return {Path(e["path"]).name: e for e in json.loads(report.read_text())["files"]}


def test_limit_looks_at_no_more_than_n_files(tmp_path):
    runs = small_runs(tmp_path / "spool", 4)
    catalog, report = tmp_path / "catalog", tmp_path / "report.json"
    result = ingest(tmp_path / "spool", "--catalog", catalog, "--limit", "2", "--report", report)
    assert result.exit_code == 0, result.output
    entries = report_entries(report)
    assert len(entries) == 2 and {e["status"] for e in entries.values()} == {"ingested"}
    assert catalog_uids(catalog) == {runs[name] for name in entries}


def test_since_takes_only_files_modified_since_the_date(tmp_path):
    runs = small_runs(tmp_path / "spool", 4)
    old = datetime(2020, 1, 31).timestamp()
    for name in ("run0.jsonl", "run2.jsonl"):
        os.utime(tmp_path / "spool" / name, (old, old))
    catalog, report = tmp_path / "catalog", tmp_path / "report.json"
    result = ingest(tmp_path / "spool", "--catalog", catalog, "--since", "2025-01-01", "--report", report)
    assert result.exit_code == 0, result.output
    assert set(report_entries(report)) == {"run1.jsonl", "run3.jsonl"}
    assert catalog_uids(catalog) == {runs["run1.jsonl"], runs["run3.jsonl"]}


def test_plain_lines_and_a_summary_when_not_on_a_terminal(tmp_path):
    small_runs(tmp_path / "spool", 2)
    result = ingest(tmp_path / "spool", "--catalog", tmp_path / "catalog")
    assert result.exit_code == 0, result.output
    for name in ("run0.jsonl", "run1.jsonl"):  # one line a file, as it is done
        assert f"ingested {tmp_path / 'spool' / name} (1 runs" in result.output
    assert "ingested │     2 │    2" in result.output  # the summary table: files and runs by status
    assert "\r" not in result.output  # no progress bar redrawn in a log


def test_config_file_then_environment_then_flags(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("INGESTER_CATALOG", "INGESTER_JOBS", "INGESTER_DATA_ROOTS", "INGESTER_PROCESSES"):
        monkeypatch.delenv(name, raising=False)
    Path("ingester.toml").write_text('catalog = "from-file"\njobs = 3\nprocesses = 1\ndata_roots = ["/data/a"]\n')
    settings = load_settings()  # ./ingester.toml is read without --config
    assert (settings.catalog, settings.jobs, settings.processes, settings.data_roots) == (
        Path("from-file"),
        3,
        1,
        [Path("/data/a")],
    )
    monkeypatch.setenv("INGESTER_JOBS", "5")
    monkeypatch.setenv("INGESTER_DATA_ROOTS", '["/data/b"]')
    settings = load_settings()
    assert (settings.catalog, settings.jobs, settings.data_roots) == (Path("from-file"), 5, [Path("/data/b")])
    assert load_settings(jobs=7, catalog=Path("from-flag")).jobs == 7

    runs = small_runs(tmp_path / "spool", 1)
    Path("ingester.toml").write_text('catalog = "from-file"\n')
    monkeypatch.delenv("INGESTER_DATA_ROOTS")
    assert ingest("spool").exit_code == 0  # no --catalog: the file's
    assert catalog_uids(tmp_path / "from-file") == set(runs.values())
    monkeypatch.setenv("INGESTER_CATALOG", "from-env")
    assert ingest("spool").exit_code == 0
    assert catalog_uids(tmp_path / "from-env") == set(runs.values())
    assert ingest("spool", "--catalog", "from-flag").exit_code == 0
    assert catalog_uids(tmp_path / "from-flag") == set(runs.values())
