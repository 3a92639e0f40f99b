"""`scripts/wheelhouse.sh DIR`, then an install from DIR alone into a fresh venv, as on an air-gapped machine.

The wheelhouse is built with pip as this machine configures it (the sending side has an index); the
install is `pip install --isolated --no-index --find-links DIR` with every PIP_* variable removed, so
neither a configured index nor find-links folder can fill a gap: what is not in DIR fails the test.
The installed `ingester` then ingests the bundled good fixtures. Slow (a few minutes: the wheels of
Tiled's server side, and a venv installed from them); built once for the module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from support.corpus import EXPECTED, FIXTURES, REPO

pytestmark = pytest.mark.slow


def offline_environment() -> dict[str, str]:
    """This environment without any PIP_* variable (index, find-links, constraints) or our own settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "INGESTER_", "TILED_"))}


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheelhouse")
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "wheelhouse.sh"), str(folder)],
        env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return folder


def test_installs_from_the_wheelhouse_alone_and_ingests(wheelhouse: Path, tmp_path: Path):
    pins = (wheelhouse / "requirements.txt").read_text().split()
    assert "bluesky-ingester==0.1.0" in pins and any(pin.startswith("tiled==") for pin in pins)
    assert len(pins) == len(list(wheelhouse.glob("*.whl")))

    env = offline_environment()
    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    install = subprocess.run(
        [target / "bin" / "python", "-m", "pip", "install", "--isolated", "--no-index", "--quiet",
         "--find-links", wheelhouse, "bluesky-ingester"],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr

    report = tmp_path / "report.json"
    ingest = subprocess.run(
        [target / "bin" / "ingester", "ingest-dir", FIXTURES / "good", "--catalog", tmp_path / "catalog",
         "--report", report],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr
    statuses = {Path(entry["path"]).name: entry["status"] for entry in json.loads(report.read_text())["files"]}
    assert set(statuses) == {name.removeprefix("good/") for name in EXPECTED if name.startswith("good/")}
    assert set(statuses.values()) <= {"ingested", "already-present"}
    files = len(statuses)
    assert f"{files} files, " in ingest.stdout and str(tmp_path / "catalog") in ingest.stdout, ingest.stdout
