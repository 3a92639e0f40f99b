"""`IngestMetrics` counted from the outcomes several writer processes send back to their parent.

The writers are real processes writing the embedded catalog (ingester.ingest.workers); the parent
counts each outcome it receives, so the totals equal what was ingested and refused, by stage, however
the files were shared out. The metrics are read back through prometheus_client's own parser.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ingester import __version__
from ingester.config import Settings
from ingester.ingest.files import BatchOptions
from ingester.ingest.metrics import IngestMetrics
from ingester.ingest.workers import run_in_processes
from support.corpus import FIXTURES
from support.runfiles import write_run_file

RUNS = 8


def samples(metrics: IngestMetrics) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.text().decode())
        for sample in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_the_parent_counts_every_writer_processes_outcome(tmp_path: Path):
    spool = tmp_path / "spool"
    spool.mkdir()
    for index in range(RUNS):
        write_run_file(spool / f"run{index:02}.jsonl", events=3)
    shutil.copy(FIXTURES / "bad" / "schema_event_no_seq_num.jsonl", spool)  # refused at validation
    shutil.copy(FIXTURES / "good" / "blob_count.jsonl", spool)  # its HDF5 file is not there: refused at resolve
    files = sorted(spool.glob("*.jsonl"))
    catalog = tmp_path / "catalog"
    metrics = IngestMetrics(target_kind="embedded", target=str(catalog))

    summary, deferred = run_in_processes(
        files, Settings(catalog=catalog, jobs=2), BatchOptions(), processes=2, readable_roots=[spool],
        on_file=metrics.count_file,
    )  # fmt: skip

    assert deferred == []
    assert Counter(run.status for run in summary.runs) == {"ingested": RUNS, "refused": 2}
    found = samples(metrics)
    assert value(found, "ingester_files_seen_total") == len(files)
    assert value(found, "ingester_runs_total", status="ingested") == RUNS
    assert value(found, "ingester_runs_total", status="refused") == 2
    assert value(found, "ingester_errors_total", stage="validate") == 1
    assert value(found, "ingester_errors_total", stage="resolve") == 1
    assert value(found, "ingester_errors_total", stage="write") == 0
    lines = sum(1 for path in files for line in path.read_bytes().splitlines() if line.strip())
    assert value(found, "ingester_documents_total") == lines
    assert value(found, "ingester_bytes_read_total") == sum(path.stat().st_size for path in files)
    assert value(found, "ingester_ingest_seconds_count") == RUNS
    assert value(found, "ingester_lag_seconds_count") == RUNS
    assert value(found, "ingester_info", version=__version__, target_kind="embedded", target=str(catalog)) == 1
