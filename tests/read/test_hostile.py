"""Hostile or broken run files: each is refused at validation with a reason that says what is wrong,
by `validate` and by `ingest-dir` alike (never `failed`, never "still being written"), and nothing
of it reaches Tiled. Also what a file may hold that is odd but fine (a byte order mark)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from event_model import compose_run

from ingester.read.limits import MAX_NESTING
from ingester.read.reader import MAX_LINE_BYTES
from support.cli import catalog_uids, ingest, run_ingester, runner
from support.runfiles import write_run_file


def documents(**start_metadata) -> list[tuple[str, dict]]:
    run = compose_run(metadata=start_metadata)
    desc = run.compose_descriptor(name="primary", data_keys={"x": {"source": "s", "dtype": "number", "shape": []}})
    event = desc.compose_event(data={"x": 1.0}, timestamps={"x": 1.0}, seq_num=1)
    return [
        ("start", run.start_doc),
        ("descriptor", desc.descriptor_doc),
        ("event", event),
        ("stop", run.compose_stop()),
    ]


def write(path: Path, docs: list[tuple[str, dict]], first_line: bytes | None = None) -> Path:
    lines = [orjson.dumps([name, doc]) + b"\n" for name, doc in docs]
    if first_line is not None:
        lines[0] = first_line
    path.write_bytes(b"".join(lines))
    return path


def nested(depth: int) -> dict:
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value  # type: ignore[return-value]


def deep_start_line(depth: int) -> bytes:
    """A start document with metadata nested `depth` levels (event-model cannot compose it past ~300)."""
    run = compose_run()
    start = orjson.dumps(["start", run.start_doc])
    return start[:-2] + b',"deep":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}]\n"


def hostile_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what the refusal must say)."""
    good = documents()
    start = orjson.dumps(["start", good[0][1]])
    long_key = "k" * 10_000
    run = compose_run()
    desc = run.compose_descriptor(name="primary", data_keys={long_key: {"source": "s", "dtype": "number", "shape": []}})
    return {
        "nul": (write(folder / "nul.jsonl", good, start[:20] + b"\x00" + start[20:] + b"\n"), "NUL byte at column 21"),
        "too_deep_for_json": (write(folder / "deep2000.jsonl", good, deep_start_line(2000)), "nested more than 1024"),
        "too_deep_to_store": (
            write(folder / "deep100.jsonl", good, deep_start_line(MAX_NESTING + 36)),
            f"nested more than {MAX_NESTING} levels deep",
        ),
        "long_key": (
            write(folder / "long_key.jsonl", [("start", run.start_doc), ("descriptor", desc.descriptor_doc), ("stop", run.compose_stop())]),
            "is 10000 bytes long",
        ),
    }  # fmt: skip


@pytest.mark.parametrize("case", ["nul", "too_deep_for_json", "too_deep_to_store", "long_key"])
def test_hostile_content_is_refused_at_validation_saying_why(case, tmp_path):
    path, reason = hostile_files(tmp_path)[case]
    validated = runner.invoke(__import__("ingester.cli.app", fromlist=["app"]).app, ["validate", str(path)])
    assert validated.exit_code == 1, validated.output
    assert reason in validated.output and f"{path}: invalid" in validated.output, validated.output
    assert "truncated" not in validated.output
    assert len(max(validated.output.splitlines(), key=len)) < 400  # a long key is not quoted whole

    catalog, report = tmp_path / "catalog", tmp_path / "report.json"
    result = ingest(path, "--catalog", catalog, "--report", report)
    assert result.exit_code == 1, result.output
    (entry,) = json.loads(report.read_text())["files"]
    assert entry["status"] == "refused" and reason in entry["reason"], entry
    assert catalog_uids(catalog) == set()


def test_nesting_up_to_the_limit_is_written(tmp_path):
    path = write(tmp_path / "deep_ok.jsonl", documents(deep=nested(MAX_NESTING - 2)))
    result = ingest(path, "--catalog", tmp_path / "catalog")
    assert result.exit_code == 0, result.output


def test_a_byte_order_mark_is_skipped(tmp_path):
    path = tmp_path / "bom.jsonl"
    uid = write_run_file(path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert runner.invoke(__import__("ingester.cli.app", fromlist=["app"]).app, ["validate", str(path)]).exit_code == 0
    result = ingest(path, "--catalog", tmp_path / "catalog")
    assert result.exit_code == 0, result.output
    assert catalog_uids(tmp_path / "catalog") == {uid}


def test_fifos_are_skipped_never_opened(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    os.mkfifo(spool / "x.jsonl")
    os.mkfifo(tmp_path / "named.jsonl")
    uid = write_run_file(spool / "good.jsonl")
    validated = run_ingester("validate", spool, tmp_path / "named.jsonl", timeout=60)  # would hang on open
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "x.jsonl: skipped: a FIFO" in validated.stderr and "named.jsonl: skipped: a FIFO" in validated.stderr
    ingested = run_ingester("ingest-dir", spool, "--catalog", tmp_path / "catalog", timeout=120)
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr
    assert "x.jsonl: skipped: a FIFO" in ingested.stderr
    assert catalog_uids(tmp_path / "catalog") == {uid}


def test_a_line_over_the_limit_is_refused_without_reading_it_whole(tmp_path):
    path = tmp_path / "huge.jsonl"
    write_run_file(path)
    with open(path, "ab") as fh:  # a last line, cut short, longer than the limit
        fh.write(b'["event", {"data": "' + b"x" * (MAX_LINE_BYTES + (8 << 20)))
    code = (  # VmHWM, not ru_maxrss, which a child inherits from the (large) test process across fork+exec
        "import sys; from ingester.read.validate import validate_file; "
        "report = validate_file(sys.argv[1]); print(report.status, [str(p) for p in report.all_problems()]); "
        "print(int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) // 1024)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    verdict, peak = done.stdout.strip().splitlines()
    assert verdict.startswith("invalid") and "longer than 64 MiB" in verdict, done.stdout + done.stderr
    assert int(peak) < 3 * (MAX_LINE_BYTES >> 20) + 200, f"peak {peak} MB"  # not the whole line, parsed
