"""`ingester watch` as a real process against a real Tiled server: runs arrive once, nothing is lost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import event_model
import orjson
import pytest

from support.runfiles import write_run_file
from support.servers import TiledServer, wait_for

SETTLE = "0.5"


def start_watcher(spool: Path, server: TiledServer, tmp_path: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "TILED_API_KEY": server.api_key}
    log_path = tmp_path / f"watch-{time.monotonic_ns()}.log"
    log = open(log_path, "w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ingester",
            "watch",
            str(spool),
            "--tiled-uri",
            server.uri,
            "--ledger",
            f"sqlite:///{tmp_path / 'ledger.db'}",
            "--settle",
            SETTLE,
            "--retry-after",
            "1",
            *extra,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_for(lambda: "watching " in log_path.read_text() or process.poll() is not None, what="the watcher to start")
    assert process.poll() is None, log_path.read_text()
    return process


def stop_watcher(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)


@pytest.fixture
def spool(tmp_path) -> Path:
    folder = tmp_path / "spool"
    folder.mkdir()
    return folder


def test_a_run_written_slowly_appears_only_after_its_stop(spool, server, tmp_path):
    watcher = start_watcher(spool, server, tmp_path)
    try:
        path = spool / "slow.jsonl"
        run = event_model.compose_run()
        desc = run.compose_descriptor(name="primary", data_keys={"x": {"source": "s", "dtype": "number", "shape": []}})
        with open(path, "wb") as fh:
            for name, doc in [("start", run.start_doc), ("descriptor", desc.descriptor_doc)] + [
                ("event", desc.compose_event(data={"x": 1.0}, timestamps={"x": 1.0}, seq_num=i + 1)) for i in range(3)
            ]:
                fh.write(orjson.dumps([name, doc]) + b"\n")
                fh.flush()
                time.sleep(0.8)  # longer than the settle time: still no stop, so no ingest
            time.sleep(2)
            assert run.start_doc["uid"] not in server.uids()
            fh.write(orjson.dumps(["stop", run.compose_stop()]) + b"\n")
        wait_for(lambda: server.complete(run.start_doc["uid"]), what="the run after its stop")
        assert stop_watcher(watcher) == 0
    finally:
        watcher.kill()


def test_fifty_runs_dropped_at_once_arrive_exactly_once(spool, server, tmp_path):
    watcher = start_watcher(spool, server, tmp_path)
    try:
        staging = tmp_path / "staging"
        staging.mkdir()
        uids = {write_run_file(staging / f"run{i:02d}.jsonl") for i in range(50)}
        for file in staging.iterdir():
            file.rename(spool / file.name)
        wait_for(lambda: uids <= set(server.uids()), what="50 runs")
        time.sleep(2)
        assert sorted(server.uids()) == sorted(uids)
        status = subprocess.run(
            [
                sys.executable,
                "-m",
                "ingester",
                "status",
                "--tiled-uri",
                server.uri,
                "--ledger",
                f"sqlite:///{tmp_path / 'ledger.db'}",
            ],
            capture_output=True,
            text=True,
        )
        assert "(watch): last seen" in status.stdout and "ingested" in status.stdout, status.stdout
        assert stop_watcher(watcher) == 0
    finally:
        watcher.kill()


def test_log_json_writes_one_json_object_a_line(spool, server, tmp_path):
    watcher = start_watcher(spool, server, tmp_path, "--log-json")
    uid = write_run_file(spool / "one.jsonl")
    wait_for(lambda: server.complete(uid), what="the run")
    assert stop_watcher(watcher) == 0
    (log,) = [p for p in tmp_path.glob("watch-*.log")]
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert any(uid in r["text"] or "one.jsonl" in r["text"] for r in records)


def test_polling_sees_files_written_by_another_process(spool, server, tmp_path):
    watcher = start_watcher(spool, server, tmp_path, "--poll", "--poll-interval", "0.5")
    try:
        code = (
            "import sys; sys.path.insert(0, sys.argv[2]); from support.runfiles import write_run_file; "
            "from pathlib import Path; print(write_run_file(Path(sys.argv[1]), pause=0.05))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, str(spool / "other.jsonl"), str(Path(__file__).parents[1])],
            capture_output=True,
            text=True,
            check=True,
        )
        uid = done.stdout.strip()
        wait_for(lambda: server.complete(uid), what="the run written by another process")
        assert stop_watcher(watcher) == 0
    finally:
        watcher.kill()


def test_kill_9_then_restart_loses_and_duplicates_nothing(spool, server, tmp_path):
    uids = {write_run_file(spool / f"run{i:02d}.jsonl") for i in range(10)}
    big = write_run_file(spool / "big.jsonl", events=200_000)
    uids.add(big)
    watcher = start_watcher(spool, server, tmp_path)
    wait_for(lambda: len(server.uids()) >= 1, what="the first run")
    watcher.send_signal(signal.SIGKILL)
    watcher.wait()
    watcher = start_watcher(spool, server, tmp_path)
    try:
        wait_for(
            lambda: uids <= set(server.uids()) and all(server.complete(u) for u in uids),
            timeout=120,
            what="every run complete after the restart",
        )
        assert sorted(server.uids()) == sorted(uids)
        assert stop_watcher(watcher) == 0
    finally:
        watcher.kill()


def test_runs_arrive_after_tiled_comes_back(spool, server, tmp_path):
    watcher = start_watcher(spool, server, tmp_path)
    try:
        wait_for(lambda: (tmp_path / "ledger.db").exists(), what="the watcher to start")
        server.stop()
        uids = {write_run_file(spool / f"while-down{i}.jsonl") for i in range(3)}
        time.sleep(3)  # the watcher tries, fails, and schedules retries
        server.start()
        wait_for(
            lambda: uids <= set(server.uids()) and all(server.complete(u) for u in uids),
            timeout=90,
            what="runs written while Tiled was down",
        )
        assert stop_watcher(watcher) == 0
    finally:
        watcher.kill()


def test_sigterm_during_a_large_run_exits_0_and_the_run_arrives_after_restart(spool, server, tmp_path):
    watcher = start_watcher(spool, server, tmp_path)
    try:
        wait_for(lambda: (tmp_path / "ledger.db").exists(), what="the watcher to start")
        uid = write_run_file(spool / "large.jsonl", events=200_000)
        time.sleep(float(SETTLE) + 1.5)
        assert stop_watcher(watcher) == 0
    finally:
        watcher.kill()
    watcher = start_watcher(spool, server, tmp_path)
    try:
        wait_for(lambda: server.complete(uid), timeout=120, what="the large run after the restart")
        assert server.uids().count(uid) == 1
        assert stop_watcher(watcher) == 0
    finally:
        watcher.kill()


def test_a_pack_moved_into_the_spool_is_ingested_through_its_root_map(spool, server, tmp_path):
    """A databroker-pack folder carried in (moved into place whole): its msgpack documents are
    ingested with their external files found in the pack; a file of the pack named like a run file
    that is not one of its documents is left alone."""
    from support.corpus import EXPECTED, FIXTURES

    carried = tmp_path / "usb" / "pack"
    shutil.copytree(FIXTURES / "packs" / "msgpack-copy", carried)
    (carried / "external_files" / "settings.json").write_text('{"not": "a run"}\n')
    uids = {EXPECTED[name]["uid"] for name in ("good/scan_baseline.jsonl", "moved/npy_seq_moved.jsonl")}
    uids.add(EXPECTED["moved/legacy_ad_moved.jsonl"]["uid"])
    watcher = start_watcher(spool, server, tmp_path)
    try:
        carried.rename(spool / "pack")
        wait_for(lambda: all(server.complete(uid) for uid in uids), what="the pack's three runs")
        assert stop_watcher(watcher) == 0
    finally:
        watcher.kill()
    log = "".join(path.read_text() for path in tmp_path.glob("watch-*.log"))
    assert "settings.json" not in log and "refused" not in log, log


def test_a_pack_whose_catalog_lands_last_is_ingested_once_it_is_there(spool, server, tmp_path):
    """A pack copied into the spool file by file, its catalog.yml last: the runs with external files
    are refused at first (nothing maps the pack's hashed roots), then ingested when catalog.yml lands."""
    from support.corpus import EXPECTED, FIXTURES

    carried = tmp_path / "usb" / "pack"
    shutil.copytree(FIXTURES / "packs" / "msgpack-copy", carried)
    catalog = (carried / "catalog.yml").read_bytes()
    (carried / "catalog.yml").unlink()
    external = {EXPECTED[name]["uid"] for name in ("moved/npy_seq_moved.jsonl", "moved/legacy_ad_moved.jsonl")}
    plain = EXPECTED["good/scan_baseline.jsonl"]["uid"]
    watcher = start_watcher(spool, server, tmp_path)
    try:
        carried.rename(spool / "pack")
        logs = lambda: "".join(path.read_text() for path in tmp_path.glob("watch-*.log"))  # noqa: E731
        wait_for(lambda: logs().count("refused: ") == 2 and server.complete(plain), 120, "two refusals")
        assert not external & set(server.uids())  # a refused run leaves nothing behind
        (spool / "pack" / "catalog.yml").write_bytes(catalog)
        wait_for(lambda: all(server.complete(uid) for uid in external), 120, "the refused runs, once catalog.yml is in")
        assert sorted(server.uids()) == sorted({plain, *external})
        assert stop_watcher(watcher) == 0
    finally:
        watcher.kill()
