"""`ingester watch --metrics-port` as a real process: Prometheus metrics scraped over HTTP and /healthz.

The watcher writes to a SimpleTiledServer; run files land in its spool; /metrics is scraped until the
counts are there, parsed with prometheus_client's own parser, and must equal what landed. /healthz is
200 while everything answers and 503 once the Tiled server is stopped; a run landing then fails at the
write and is counted again, as a retry, once the server is back. The API key is never shown.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingester import __version__
from support.cli import run_ingester, start_ingester
from support.corpus import EXPECTED, FIXTURES
from support.servers import TiledServer, free_port, wait_for

GOOD = ["scan_baseline.jsonl", "count_event_page.jsonl", "blob_count.jsonl"]
BAD = "schema_event_no_seq_num.jsonl"  # refused at validation: the second event has no seq_num
STARTUP = 120.0  # seconds: a loaded 2-core machine imports tiled slowly
INGEST = 120.0


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """/metrics parsed: (sample name, sorted labels) -> value."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def documents_in(path: Path) -> int:
    return sum(1 for line in path.read_bytes().splitlines() if line.strip())


def land(source: Path, spool: Path) -> None:
    """A run file lands in the spool (written aside, then renamed, as a careful writer does)."""
    part = spool / f"{source.name}.part"
    shutil.copy(source, part)
    part.rename(spool / source.name)


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    folder = tmp_path / "spool"
    folder.mkdir()
    shutil.copytree(FIXTURES / "good" / "data", folder / "data")  # blob_count's HDF5 file
    return folder


@pytest.fixture
def server(tmp_path: Path, spool: Path):
    tiled = TiledServer(tmp_path / "tiled", spool)
    yield tiled
    with contextlib.suppress(Exception):  # a test may have stopped it already
        tiled.stop()


class MetricsWatcher:
    """`ingester watch SPOOL --tiled-uri ... --metrics-port N` in the background, with its log."""

    def __init__(self, tmp_path: Path, spool: Path, server: TiledServer):
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = tmp_path / "watch.log"
        self.process = start_ingester(
            self.log, "watch", spool, "--tiled-uri", server.uri, "--ledger", f"sqlite:///{tmp_path / 'ledger.db'}",
            "--metrics-port", self.url.rpartition(":")[2], "--settle", "0.5", "--retry-after", "1",
            env={"TILED_API_KEY": server.api_key},
        )  # fmt: skip
        wait_for(
            lambda: "watching " in self.log.read_text() or self.process.poll() is not None,
            timeout=STARTUP,
            what="the watcher to start",
        )
        assert self.process.poll() is None, self.log.read_text()

    def health(self) -> httpx.Response:
        return httpx.get(f"{self.url}/healthz", timeout=30)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=120)


def test_metrics_count_what_landed_and_health_follows_the_target(tmp_path, spool, server):
    watcher = MetricsWatcher(tmp_path, spool, server)
    try:
        wait_for(lambda: watcher.health().status_code == 200, timeout=INGEST, what="/healthz to say 200")
        report = watcher.health().json()
        assert report["status"] == "ok" and report["last_scan"]
        assert report["observer_alive"] and report["target_reachable"] and report["ledger_reachable"]

        landed = [FIXTURES / "good" / name for name in GOOD] + [FIXTURES / "bad" / BAD]
        for source in landed:
            land(source, spool)

        def counted() -> bool:
            samples = scrape(watcher.url)
            return value(samples, "ingester_runs_total", status="ingested") + value(
                samples, "ingester_runs_total", status="refused"
            ) == len(landed)

        wait_for(counted, timeout=INGEST, what="every landed run to be counted")
        samples = scrape(watcher.url)
        assert value(samples, "ingester_runs_total", status="ingested") == len(GOOD)
        assert value(samples, "ingester_runs_total", status="refused") == 1
        assert value(samples, "ingester_runs_total", status="failed") == 0
        assert value(samples, "ingester_files_seen_total") == len(landed)
        assert value(samples, "ingester_documents_total") == sum(documents_in(path) for path in landed)
        assert value(samples, "ingester_bytes_read_total") == sum(path.stat().st_size for path in landed)
        assert value(samples, "ingester_errors_total", stage="validate") == 1
        assert (
            sum(value(samples, "ingester_errors_total", stage=s) for s in ("read", "resolve", "write", "ledger")) == 0
        )
        assert value(samples, "ingester_retries_total") == 0
        assert value(samples, "ingester_ingest_seconds_count") == len(GOOD)
        assert value(samples, "ingester_lag_seconds_count") == len(GOOD)
        assert value(samples, "ingester_last_success_timestamp_seconds") > 0
        wait_for(lambda: value(scrape(watcher.url), "ingester_pending_runs") == 0, what="nothing pending")
        info = next(labels for (name, labels) in samples if name == "ingester_info")
        assert dict(info) == {"version": __version__, "target_kind": "tiled", "target": server.uri}
        assert set(server.uids()) == {EXPECTED[f"good/{name}"]["uid"] for name in GOOD}

        shown = httpx.get(f"{watcher.url}/metrics", timeout=10).text + watcher.health().text
        assert server.api_key not in shown and server.api_key not in watcher.log.read_text()

        server.stop()
        wait_for(lambda: watcher.health().status_code == 503, timeout=INGEST, what="/healthz to say 503")
        report = watcher.health().json()
        assert report["status"] == "unhealthy" and report["target_reachable"] is False
        assert report["observer_alive"] and report["ledger_reachable"]

        # A run that lands meanwhile fails at the write, and is ingested on a retry once Tiled is back.
        land(FIXTURES / "good" / "two_runs.jsonl", spool)
        wait_for(
            lambda: value(scrape(watcher.url), "ingester_errors_total", stage="write") >= 1,
            timeout=INGEST,
            what="the write to fail",
        )
        assert value(scrape(watcher.url), "ingester_runs_total", status="failed") >= 1
        server.start()
        wait_for(
            lambda: value(scrape(watcher.url), "ingester_runs_total", status="ingested") == len(GOOD) + 2,
            timeout=INGEST,
            what="the failed runs to be ingested on a retry",
        )
        assert value(scrape(watcher.url), "ingester_retries_total") >= 1
        wait_for(lambda: watcher.health().status_code == 200, timeout=INGEST, what="/healthz to say 200 again")
    finally:
        assert watcher.stop() == 0, watcher.log.read_text()


def test_a_metrics_port_taken_is_exit_2_before_anything_is_watched(tmp_path, spool):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        catalog = tmp_path / "catalog"
        result = run_ingester("watch", spool, "--catalog", catalog, "--metrics-port", str(port), timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr
    assert not catalog.exists()
