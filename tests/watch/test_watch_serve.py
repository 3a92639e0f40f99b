"""`ingester watch --serve` as a real process: one process ingests the spool and serves the catalog it writes.

Tiled clients (bluesky-tiled-plugins' included) read runs while new ones arrive, cannot write, and need the
API key when TILED_API_KEY is set; `ingester status` shows where the catalog is served; SIGTERM stops both.
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import h5py
import httpx
import numpy
import pytest
from bluesky_tiled_plugins.writing.validator import validate

from ingester.target.targets import open_embedded
from support.cli import catalog_uids, ledger_rows, run_ingester, start_ingester
from support.corpus import EXPECTED, FIXTURES
from support.runfiles import write_run_file
from support.servers import free_port, wait_for

ARRIVALS = ["scan_baseline.jsonl", "count_event_page.jsonl", "blob_count.jsonl"]
KEY = "servedwatchkey42"
STARTUP = 120.0  # seconds: a loaded 2-core machine imports tiled slowly
INGEST = 120.0
BIG = 300_000  # events: appended for a few seconds, long enough to be caught while written


class ServingWatcher:
    """`ingester watch SPOOL --serve` started in the background on a free port, with its log."""

    def __init__(self, tmp_path: Path, spool: Path, catalog: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.catalog = catalog
        self.log = tmp_path / "watch.log"
        self.process = start_ingester(
            self.log, "watch", spool, "--catalog", catalog, "--serve", "--port", str(self.port),
            "--settle", "0.5", "--retry-after", "1",
        )  # fmt: skip
        wait_for(
            lambda: "watching " in self.log.read_text() or self.process.poll() is not None,
            timeout=STARTUP,
            what="the watcher to start serving",
        )
        assert self.process.poll() is None, self.log.read_text()

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=120)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    """An empty spool, with the data folder the HDF5 run's documents point into."""
    folder = tmp_path / "spool"
    folder.mkdir()
    shutil.copytree(FIXTURES / "good" / "data", folder / "data")
    return folder


def arrive(spool: Path, name: str) -> str:
    """A fixture run file lands in the spool (written aside, then renamed, as a careful writer does); its uid."""
    part = spool / f"{name}.part"
    shutil.copy(FIXTURES / "good" / name, part)
    part.rename(spool / name)
    return EXPECTED[f"good/{name}"]["uid"]


def complete(catalog, uid: str) -> bool:
    return uid in catalog and "stop" in catalog[uid].metadata


def read_run(catalog, name: str) -> None:
    """Read a run through bluesky-tiled-plugins' client, as a user would, and check it with its validator."""
    expected = EXPECTED[f"good/{name}"]
    run = catalog[expected["uid"]]
    for stream, rows in expected["streams"].items():
        assert len(run[stream].read()["time"]) == rows
    assert validate(run, fix_errors=False, try_reading=True, raise_on_error=True, write_notes=False)


def caught_writing(url: str, uid: str, process, timeout: float = INGEST) -> dict | None:
    """The run's metadata as a client sees it while the watcher writes it; None when the client saw it
    only once written. One plain HTTP request a look (the tiled client makes several, and retries)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=INGEST) as http:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the watcher ended"
            response = http.get(f"/api/v1/metadata/{uid}")
            metadata = response.json()["data"]["attributes"]["metadata"] if response.status_code == 200 else {}
            if metadata.get("_ingest", {}).get("state") == "writing":
                return metadata
            if "stop" in metadata:
                return None
            time.sleep(0.01)
    pytest.fail(f"run {uid} never appeared")


def big_run_caught_writing(tmp_path: Path, spool: Path, url: str, process) -> list[tuple[str, int]]:
    """Land ever larger runs in the spool until a client catches one while it is written: on a loaded
    machine a client's looks can all miss the first one's write. Each run's (uid, events), in order."""
    landed = []
    for attempt, events in enumerate((BIG, 2 * BIG, 4 * BIG)):
        path = tmp_path / f"big{attempt}.jsonl"
        uid = write_run_file(path, events=events)
        path.rename(spool / path.name)
        landed.append((uid, events))
        seen = caught_writing(url, uid, process)
        if seen is not None:
            assert "stop" not in seen  # a run being written reads as in progress, as TiledWriter's does
            return landed
    pytest.fail(f"no run was caught while written: {landed}")


def test_clients_read_runs_as_they_arrive_and_cannot_write(tmp_path, spool, monkeypatch):
    from bluesky_tiled_plugins import CatalogOfBlueskyRuns
    from tiled.client import from_uri

    monkeypatch.delenv("TILED_API_KEY", raising=False)
    watcher = ServingWatcher(tmp_path, spool, tmp_path / "catalog")
    try:
        catalog = from_uri(watcher.url)  # anonymous, on loopback
        assert isinstance(catalog, CatalogOfBlueskyRuns)
        assert len(catalog) == 0
        arrived = []
        for name in ARRIVALS:
            uid = arrive(spool, name)
            for earlier in arrived:  # read while the new run is being ingested
                read_run(catalog, earlier)
            wait_for(lambda uid=uid: complete(catalog, uid), timeout=INGEST, what=f"{name} to be served")
            arrived.append(name)
        read_run(catalog, "blob_count.jsonl")
        with h5py.File(FIXTURES / "good" / "data" / "blob-count.h5", "r") as f:  # served from the spool's data
            image = catalog[EXPECTED["good/blob_count.jsonl"]["uid"]]["primary"]["bdet"].read()
            numpy.testing.assert_array_equal(image, f["/entry/data/data"][()])

        with pytest.raises(httpx.HTTPStatusError):
            catalog.create_container(key="intruder")
        assert "intruder" not in catalog

        status = run_ingester("status", "--catalog", watcher.catalog)
        assert status.returncode == 0, status.stderr
        assert f"serving {watcher.url}" in status.stdout

        bigs = big_run_caught_writing(tmp_path, spool, watcher.url, watcher.process)
        assert watcher.terminate() == 0, watcher.log.read_text()  # SIGTERM while it is written
        assert "finishing" in watcher.log.read_text()
        catalog.context.close()
    finally:
        watcher.kill()
    uids = {EXPECTED[f"good/{name}"]["uid"] for name in ARRIVALS} | {uid for uid, _ in bigs}
    assert catalog_uids(watcher.catalog) == uids  # the catalog reopens, every run in it
    with open_embedded(watcher.catalog) as target:  # the run in hand was finished, not left half-written
        for big, events in bigs:
            assert target.root[big].metadata["_ingest"]["state"] == "complete"
            assert len(target.root[big]["primary"].read()["x"]) == events
    assert {row[0] for row in ledger_rows(watcher.catalog).values()} == {"ingested"}
    after = run_ingester("status", "--catalog", watcher.catalog)
    assert "serving" not in after.stdout and "stopped" in after.stdout


def test_with_an_api_key_anonymous_clients_are_refused_and_the_key_only_reads(tmp_path, spool, monkeypatch):
    from tiled.client import from_uri

    monkeypatch.setenv("TILED_API_KEY", KEY)
    watcher = ServingWatcher(tmp_path, spool, tmp_path / "catalog")
    try:
        uid = arrive(spool, "scan_baseline.jsonl")
        catalog = from_uri(watcher.url, api_key=KEY)
        wait_for(lambda: complete(catalog, uid), timeout=INGEST, what="the run to be served")
        read_run(catalog, "scan_baseline.jsonl")
        with pytest.raises(httpx.HTTPStatusError):  # the key reads; only the watcher writes
            catalog.create_container(key="intruder")
        assert "intruder" not in catalog
        catalog.context.close()

        run = f"{watcher.url}/api/v1/metadata/{uid}"
        assert httpx.get(run).status_code == httpx.codes.UNAUTHORIZED
        assert httpx.get(run, headers={"Authorization": "Apikey wrongkey1"}).status_code == httpx.codes.UNAUTHORIZED
        assert httpx.get(run, params={"api_key": "wrongkey1"}).status_code == httpx.codes.UNAUTHORIZED
        assert httpx.get(run, headers={"Authorization": f"Apikey {KEY}"}).status_code == httpx.codes.OK
        assert httpx.get(run, params={"api_key": KEY}).status_code == httpx.codes.OK  # as Tiled takes keys too
        assert httpx.get(run, cookies={"tiled_api_key": KEY}).status_code == httpx.codes.OK
        assert httpx.get(f"{watcher.url}/api/v1/").status_code == httpx.codes.OK  # what a client reads first

        status = run_ingester("status", "--catalog", watcher.catalog)
        assert f"serving {watcher.url}" in status.stdout
        assert watcher.terminate() == 0, watcher.log.read_text()
    finally:
        watcher.kill()
    assert KEY not in watcher.log.read_text() and KEY not in status.stdout + status.stderr
    assert catalog_uids(watcher.catalog) == {uid}


def test_a_taken_port_or_a_server_target_is_a_usage_error(tmp_path, spool):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        busy = run_ingester("watch", spool, "--catalog", tmp_path / "catalog", "--serve", "--port", str(port))
    assert busy.returncode == 2 and f"cannot serve on 127.0.0.1:{port}" in busy.stderr, busy.stderr
    assert not (tmp_path / "catalog" / "catalog.db").exists()  # nothing was opened
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    remote = run_ingester("watch", spool, "--tiled-uri", "http://127.0.0.1:9", "--ledger", ledger, "--serve")
    assert remote.returncode == 2 and "--serve serves the embedded catalog" in remote.stderr, remote.stderr
    assert not (tmp_path / "ledger.db").exists()
