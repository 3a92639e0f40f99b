"""Watch stage: real files, real threads, a recording callback in place of the pipeline (no Tiled)."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ingester.cli.signals import install_signal_handlers
from ingester.watch.watcher import SpoolWatcher, WatchError, WatchOptions

SETTLE = 0.3
START = ["start", {"uid": "r1", "time": 0.0}]
EVENT = ["event", {"uid": "e1", "data": {"x": 1.5}, "seq_num": 1}]
STOP = ["stop", {"uid": "s1", "time": 1.0, "run_start": "r1", "exit_status": "success"}]


def line(item) -> str:
    return json.dumps(item) + "\n"


def write_run(path: Path, *, stop: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(line(START) + line(EVENT) + (line(STOP) if stop else ""))
    return path


def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


class Recorder:
    """The callback: records (path, time) and answers with the next scripted status for that file."""

    def __init__(self, script: dict[str, list[str]] | None = None, delay: float = 0.0):
        self.script = script or {}
        self.delay = delay
        self.calls: list[tuple[Path, float]] = []
        self.entered = threading.Event()
        self.finished = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, path: Path) -> str:
        self.entered.set()
        with self._lock:
            self.calls.append((path, time.monotonic()))
            statuses = self.script.get(path.name)
            status = statuses.pop(0) if statuses else "ingested"
        time.sleep(self.delay)
        self.finished.set()
        if status == "raise":
            raise RuntimeError("the callback broke")
        return status

    def names(self) -> Counter:
        with self._lock:
            return Counter(path.name for path, _ in self.calls)

    def times(self, name: str) -> list[float]:
        with self._lock:
            return [t for path, t in self.calls if path.name == name]


@contextmanager
def watching(folder: Path, recorder: Recorder | None = None, **options) -> Iterator[tuple[SpoolWatcher, Recorder]]:
    """Run a watcher on `folder` in a thread; on exit stop it and check that it left no thread behind."""
    recorder = recorder or Recorder()
    callbacks = {name: options.pop(name) for name in ("on_incomplete", "on_heartbeat") if name in options}
    options = {"settle": SETTLE, "poll": False, "rescan_interval": 600.0, **options}
    watcher = SpoolWatcher([folder], on_ready=recorder, options=WatchOptions(**options), **callbacks)
    before = set(threading.enumerate())
    stop = threading.Event()
    runner = threading.Thread(target=watcher.run, args=(stop,), name="test-runner")
    runner.start()
    try:
        yield watcher, recorder
    finally:
        stop.set()
        runner.join(timeout=15)
        assert not runner.is_alive(), "run() did not return"
    assert set(threading.enumerate()) - before == set()  # no observer, scheduler or worker thread left


def quiet_for(seconds: float) -> None:
    """Let the watcher run for a while when checking that something does NOT happen."""
    time.sleep(seconds)


def test_written_line_by_line_handed_over_once_after_stop_and_settle(tmp_path):
    path = tmp_path / "run.jsonl"
    with watching(tmp_path) as (_, recorder):
        with path.open("w") as fh:
            for item in (START, EVENT, EVENT):
                fh.write(line(item))
                fh.flush()
                quiet_for(2 * SETTLE)  # longer than settle: only the missing stop keeps it back
            assert recorder.names() == {}
            fh.write(line(STOP))
            fh.flush()
            stop_written = time.monotonic()
        wait_for(lambda: recorder.names()["run.jsonl"] == 1)
        assert recorder.times("run.jsonl")[0] - stop_written >= SETTLE
        quiet_for(3 * SETTLE)
        assert recorder.names() == {"run.jsonl": 1}


def test_half_written_last_line_waits_for_completion(tmp_path):
    path = tmp_path / "run.jsonl"
    text = line(START) + line(STOP)
    with watching(tmp_path) as (_, recorder):
        path.write_text(text[:-10])
        quiet_for(4 * SETTLE)
        assert recorder.names() == {}
        with path.open("a") as fh:
            fh.write(text[-10:])
        wait_for(lambda: recorder.names() == {"run.jsonl": 1})


def test_fifty_files_at_once_each_handed_over_once(tmp_path):
    with watching(tmp_path) as (_, recorder):
        for n in range(50):
            write_run(tmp_path / f"run{n:02}.jsonl")
        wait_for(lambda: len(recorder.names()) == 50)
        quiet_for(3 * SETTLE)
        assert set(recorder.names().values()) == {1}


def test_rename_into_place_is_handed_over(tmp_path):
    with watching(tmp_path) as (_, recorder):
        write_run(tmp_path / "x.jsonl.tmp")
        quiet_for(3 * SETTLE)
        assert recorder.names() == {}
        os.rename(tmp_path / "x.jsonl.tmp", tmp_path / "x.jsonl")
        wait_for(lambda: recorder.names() == {"x.jsonl": 1})


def test_hidden_and_temporary_files_are_ignored(tmp_path):
    with watching(tmp_path) as (_, recorder):
        for name in (".hidden.jsonl", "x.jsonl.tmp", "x.jsonl.part", "notes.txt", "image.h5", ".cache/run.jsonl"):
            write_run(tmp_path / name)
        write_run(tmp_path / "marker.jsonl")
        wait_for(lambda: recorder.names()["marker.jsonl"] == 1)
        quiet_for(3 * SETTLE)
        assert recorder.names() == {"marker.jsonl": 1}


def test_files_present_before_start_are_caught_up(tmp_path):
    write_run(tmp_path / "old.jsonl")
    write_run(tmp_path / "sub" / "older.ndjson")
    with watching(tmp_path) as (_, recorder):
        wait_for(lambda: recorder.names() == {"old.jsonl": 1, "older.ndjson": 1})


def test_new_subfolder_is_followed(tmp_path):
    with watching(tmp_path) as (_, recorder):
        quiet_for(SETTLE)
        write_run(tmp_path / "new" / "deeper" / "first.jsonl")  # written as soon as the folder exists
        wait_for(lambda: recorder.names()["first.jsonl"] == 1)
        write_run(tmp_path / "new" / "deeper" / "second.jsonl")
        wait_for(lambda: recorder.names() == {"first.jsonl": 1, "second.jsonl": 1})


def test_folder_moved_in_is_scanned(tmp_path):
    spool, outside = tmp_path / "spool", tmp_path / "outside"
    spool.mkdir()
    write_run(outside / "batch" / "one.jsonl")
    write_run(outside / "batch" / "two.jsonl")
    with watching(spool) as (_, recorder):
        quiet_for(SETTLE)
        os.rename(outside / "batch", spool / "batch")
        wait_for(lambda: recorder.names() == {"one.jsonl": 1, "two.jsonl": 1})


def test_gzip_is_handed_over_once_settled(tmp_path):
    with watching(tmp_path) as (_, recorder):
        (tmp_path / "run.jsonl.gz").write_bytes(gzip.compress((line(START) + line(EVENT)).encode()))
        wait_for(lambda: recorder.names() == {"run.jsonl.gz": 1})


_WRITER = """
import json, sys, time
with open(sys.argv[1], "w") as fh:
    for item in json.loads(sys.argv[2]):
        fh.write(json.dumps(item) + "\\n")
        fh.flush()
        time.sleep(0.1)
"""


def test_polling_sees_files_written_by_another_process(tmp_path):
    with watching(tmp_path, poll=True, poll_interval=0.2) as (watcher, recorder):
        assert watcher.polled == {tmp_path: True}
        quiet_for(SETTLE)  # the catch-up scan has run: only the observer can see what comes now
        items = json.dumps([START, EVENT, EVENT, STOP])
        subprocess.run([sys.executable, "-c", _WRITER, str(tmp_path / "remote.jsonl"), items], check=True, timeout=30)
        wait_for(lambda: recorder.names() == {"remote.jsonl": 1})
        write_run(tmp_path / "sub" / "later.jsonl")
        wait_for(lambda: recorder.names()["later.jsonl"] == 1)


def test_failed_is_retried_with_backoff_until_ingested(tmp_path):
    recorder = Recorder({"run.jsonl": ["failed", "raise", "ingested"]})
    with watching(tmp_path, recorder, retry_base=0.3, retry_max=5.0) as (_, recorder):
        write_run(tmp_path / "run.jsonl")
        wait_for(lambda: recorder.names()["run.jsonl"] == 3)
        first, second, third = recorder.times("run.jsonl")
        assert second - first >= 0.3
        assert third - second >= 0.6  # doubled: a raising callback counts as failed
        quiet_for(1.5)
        assert recorder.names() == {"run.jsonl": 1 + 2}


def test_changed_file_is_retried_without_waiting_for_backoff(tmp_path):
    recorder = Recorder({"run.jsonl": ["failed"]})
    with watching(tmp_path, recorder, retry_base=60.0) as (_, recorder):
        path = write_run(tmp_path / "run.jsonl")
        wait_for(lambda: recorder.names()["run.jsonl"] == 1)
        with path.open("a") as fh:
            fh.write(line(STOP))
        wait_for(lambda: recorder.names()["run.jsonl"] == 2, timeout=5)


def test_file_without_stop_is_reported_once_as_incomplete(tmp_path):
    reported: list[Path] = []
    with watching(tmp_path, incomplete_after=0.8, on_incomplete=reported.append) as (_, recorder):
        write_run(tmp_path / "stalled.jsonl", stop=False)
        wait_for(lambda: reported)
        wait_for(lambda: recorder.names() == {"stalled.jsonl": 1})
        quiet_for(1.5)
        assert reported == [tmp_path / "stalled.jsonl"]
        assert recorder.names() == {"stalled.jsonl": 1}


def test_stop_waits_for_the_callback_in_hand(tmp_path):
    recorder = Recorder(delay=1.0)
    heartbeats: list[tuple[str, bool]] = []
    watcher = SpoolWatcher(
        [tmp_path], on_ready=recorder, options=WatchOptions(settle=SETTLE, poll=False),
        on_heartbeat=lambda state, scanned: heartbeats.append((state, scanned)),
    )  # fmt: skip
    runner = threading.Thread(target=watcher.run)
    runner.start()
    try:
        write_run(tmp_path / "a.jsonl")
        write_run(tmp_path / "b.jsonl")
        assert recorder.entered.wait(10)
        watcher.request_stop()
        assert not recorder.finished.is_set()
        runner.join(timeout=10)
        assert not runner.is_alive()
        assert recorder.finished.is_set()
        assert len(recorder.calls) == 1  # the other file is left for the next start
        assert heartbeats[-1] == ("stopped", False)
        assert any(scanned for _, scanned in heartbeats)
    finally:
        watcher.request_stop()
        runner.join(timeout=10)


def test_stop_requested_before_run_returns_at_once(tmp_path):
    watcher = SpoolWatcher([tmp_path], on_ready=Recorder(), options=WatchOptions(settle=SETTLE, poll=False))
    watcher.request_stop()
    started = time.monotonic()
    watcher.run()
    assert time.monotonic() - started < 5


def test_heartbeat_reports_state(tmp_path):
    heartbeats: list[tuple[str, bool]] = []

    def heartbeat(state: str, scanned: bool) -> None:
        heartbeats.append((state, scanned))

    with watching(tmp_path, heartbeat_interval=0.2, on_heartbeat=heartbeat):
        write_run(tmp_path / "run.jsonl", stop=False)
        wait_for(lambda: any("1 without stop" in text for text, _ in heartbeats))
    assert heartbeats[0][1] is True  # the catch-up scan
    assert "watching 1 folder(s)" in heartbeats[0][0]


def test_ledger_heartbeat_fits_as_it_is(tmp_path):
    from ingester.ledger.store import Ledger

    spool = tmp_path / "spool"
    spool.mkdir()
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", "target", command="ingester watch") as ledger:
        with watching(spool, on_heartbeat=ledger.heartbeat):
            wait_for(lambda: ledger.workers() and ledger.workers()[0].last_scan is not None)
        [worker] = ledger.workers()
        assert worker.state == "stopped"


@pytest.mark.parametrize("poll", [True, False], ids=["polling", "inotify"])
def test_watched_folder_removed_ends_run_with_an_error(tmp_path, poll):
    spool = tmp_path / "spool"
    spool.mkdir()
    watcher = SpoolWatcher(
        [spool], on_ready=Recorder(), options=WatchOptions(settle=SETTLE, poll=poll, poll_interval=0.1)
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            watcher.run()
        except WatchError as err:
            errors.append(err)

    before = set(threading.enumerate())
    runner = threading.Thread(target=run)
    runner.start()
    quiet_for(SETTLE)
    spool.rmdir()
    runner.join(timeout=10)
    if runner.is_alive():
        watcher.request_stop()
        runner.join(timeout=10)
        pytest.fail("run() went on watching a removed folder")
    assert errors
    assert set(threading.enumerate()) - before == set()


def test_not_a_folder_is_refused(tmp_path):
    with pytest.raises(NotADirectoryError):
        SpoolWatcher([tmp_path / "missing"], on_ready=Recorder())


def test_signal_handlers_set_stop():
    stop = threading.Event()
    signals = install_signal_handlers(stop)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        wait_for(stop.is_set, timeout=2)
        assert signals.received == signal.SIGTERM
    finally:
        signals.restore()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))
