"""`ingester validate` end to end over the bundled fixtures, the way a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ingester.cli.app import app
from support.corpus import EXPECTED, FIXTURES

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["validate", *args], catch_exceptions=False)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_fixture_gets_its_expected_verdict(name):
    expected = EXPECTED[name]
    path = FIXTURES / name
    result = invoke(str(path))
    lines = result.output.splitlines()
    assert lines[-1].startswith(f"{path}: {expected['status']}"), result.output
    assert result.exit_code == (0 if expected["status"] == "ok" else 1)
    assert "Traceback" not in result.output
    if expected["status"] != "ok":
        line = expected["line"]
        prefix = f"{path}:{line}: " if line is not None else f"{path}:"
        messages = [m for m in lines[:-1] if m.startswith(prefix)]
        assert any(expected["reason"].lower() in m.lower() for m in messages), result.output


def test_good_fixtures_folder_exits_zero():
    result = invoke(str(FIXTURES / "good"))
    assert result.exit_code == 0, result.output
    good = [n for n, e in EXPECTED.items() if n.startswith("good/")]
    assert len([line for line in result.output.splitlines() if line.endswith(("run)", "runs)"))]) == len(good)


def test_strict_makes_a_truncated_tail_an_error():
    path = FIXTURES / "incomplete" / "truncated_last_line.jsonl"
    assert invoke(str(path)).exit_code == 1
    result = invoke("--strict", str(path))
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith(f"{path}: invalid")


def test_json_output_has_the_same_verdicts():
    result = invoke("--json", str(FIXTURES / "bad"), str(FIXTURES / "good" / "two_runs.jsonl"))
    reports = {Path(r["path"]).relative_to(FIXTURES).as_posix(): r for r in json.loads(result.output)}
    assert result.exit_code == 1
    for name, report in reports.items():
        assert report["status"] == EXPECTED[name]["status"]
    assert [r["status"] for r in reports["good/two_runs.jsonl"]["runs"]] == ["ok", "ok"]
    problems = reports["bad/unknown_descriptor.jsonl"]["runs"][0]["problems"]
    assert problems[0]["line"] == EXPECTED["bad/unknown_descriptor.jsonl"]["line"]


def test_missing_path_is_reported_not_raised(tmp_path):
    result = invoke(str(tmp_path / "nope.jsonl"))
    assert result.exit_code == 1 and "no such file" in result.output


def test_python_dash_m_entry_point():
    good = FIXTURES / "good" / "scan_baseline.jsonl"
    done = subprocess.run([sys.executable, "-m", "ingester", "validate", str(good)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{good}: ok (1 run)"
