"""`ingester watch --on-missing-file skip` (issue 14, class 7): a run whose detector files are lost
arrives without those keys, which its `_ingest.missing` lists; the default still refuses it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from ingester.config import redact_uri
from ingester.ledger.store import Ledger
from support.facility import FACILITY, facility_uid
from support.servers import TiledServer, wait_for

NAME = "missing_detector_file.jsonl"


def watch(spool: Path, server: TiledServer, tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    log_path = tmp_path / f"watch{len(extra)}.log"
    argv = [sys.executable, "-m", "ingester", "watch", str(spool), "--tiled-uri", server.uri,
            "--ledger", f"sqlite:///{tmp_path / 'ledger.db'}", "--settle", "0.5", *extra]  # fmt: skip
    with open(log_path, "w") as log:
        process = subprocess.Popen(argv, env={**os.environ, "TILED_API_KEY": server.api_key}, stdout=log, stderr=log)
    wait_for(lambda: "watching " in log_path.read_text() or process.poll() is not None, what="the watcher to start")
    assert process.poll() is None, log_path.read_text()
    return process, log_path


def ledger_status(server: TiledServer, tmp_path: Path, path: Path) -> str | None:
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", redact_uri(server.uri)) as book:
        record = book.lookup(path)
        return None if record is None else record.status


def test_watch_skips_missing_files_only_when_asked(server, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    uid = facility_uid(NAME)
    process, log = watch(spool, server, tmp_path)
    try:
        shutil.copy(FACILITY / NAME, spool / "refused.jsonl")
        wait_for(lambda: ledger_status(server, tmp_path, spool / "refused.jsonl") == "refused", what="the refusal")
        assert "external file does not exist" in log.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    assert uid not in server.uids()

    process, _ = watch(spool, server, tmp_path, "--on-missing-file", "skip")
    try:
        shutil.copy(FACILITY / NAME, spool / "skipped.jsonl")
        wait_for(lambda: server.complete(uid), what="the run without its lost detector files")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    from tiled.client import from_uri

    client = from_uri(server.uri, api_key=server.api_key)
    try:
        missing = client[uid].metadata["_ingest"]["missing"]
        assert [m.split(":")[0] for m in missing] == ["primary/pilatus", "primary/eiger"]
    finally:
        client.context.close()
    assert ledger_status(server, tmp_path, spool / "skipped.jsonl") == "ingested"
