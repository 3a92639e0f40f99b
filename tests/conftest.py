"""Fixtures every test folder may use: a spool of bundled run files, a Tiled server on loopback, a Tiled on PostgreSQL.

Helpers that are not fixtures (run builders, run-file writers, the fixture corpus) live in `tests/support/`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from support.corpus import FIXTURES
from support.postgres_tiled import POSTGRES_ENV, PostgresTiled
from support.servers import TiledServer


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    """A spool folder: a few good runs (with their data), one bad, one incomplete."""
    spool = tmp_path / "spool"
    spool.mkdir()
    for name in ("scan_baseline.jsonl", "count_event_page.jsonl", "blob_count.jsonl", "two_runs.jsonl"):
        shutil.copy(FIXTURES / "good" / name, spool / name)
    shutil.copytree(FIXTURES / "good" / "data", spool / "data")
    shutil.copy(FIXTURES / "bad" / "unknown_descriptor.jsonl", spool / "unknown_descriptor.jsonl")
    shutil.copy(FIXTURES / "incomplete" / "no_stop.jsonl", spool / "no_stop.jsonl")
    return spool


@pytest.fixture
def server(tmp_path):
    """A SimpleTiledServer on loopback (its catalog in the test's folder), stopped after the test."""
    server = TiledServer(tmp_path / "tiled", tmp_path)
    yield server
    try:
        server.stop()
    except Exception:
        pass


@pytest.fixture
def tiled_on_postgres(tmp_path):
    """A not-yet-started `PostgresTiled` (call `.start()` in the test); skipped without the env var."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} not set")
    readable = tmp_path / "spool"
    readable.mkdir()
    server = PostgresTiled(url, tmp_path, readable)
    try:
        yield server
    finally:
        server.close()
