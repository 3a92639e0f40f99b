"""`ingester serve`: the embedded catalog, served over HTTP, read by bluesky-tiled-plugins' client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import numpy
import pytest
from typer.testing import CliRunner

from ingester.cli.app import app
from support.corpus import EXPECTED, FIXTURES


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    catalog = tmp_path_factory.mktemp("served") / "catalog"
    files = [FIXTURES / "good" / "scan_baseline.jsonl", FIXTURES / "good" / "blob_count.jsonl"]
    result = CliRunner().invoke(app, ["ingest-dir", *map(str, files), "--catalog", str(catalog)])
    assert result.exit_code == 0, result.output
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "TILED_API_KEY"}
    server = subprocess.Popen(
        [sys.executable, "-m", "ingester", "serve", "--catalog", str(catalog), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert server.poll() is None, server.stdout.read()
            time.sleep(0.2)
    else:
        server.kill()
        pytest.fail("ingester serve did not start listening")
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=30)


def test_runs_read_through_bluesky_tiled_plugins_over_http(served):
    from bluesky_tiled_plugins import CatalogOfBlueskyRuns
    from tiled.client import from_uri

    catalog = from_uri(served)
    assert isinstance(catalog, CatalogOfBlueskyRuns)
    scan = EXPECTED["good/scan_baseline.jsonl"]
    run = catalog[scan["uid"]]
    primary = run["primary"].read()
    assert len(primary["time"]) == scan["streams"]["primary"]
    assert len(run["baseline"].read()["time"]) == scan["streams"]["baseline"]


def test_external_hdf5_data_is_served_from_the_remembered_data_folder(served):
    import h5py
    from tiled.client import from_uri

    blob = EXPECTED["good/blob_count.jsonl"]
    run = from_uri(served)[blob["uid"]]
    image = run["primary"]["bdet"].read()
    with h5py.File(FIXTURES / "good" / "data" / "blob-count.h5", "r") as f:
        numpy.testing.assert_array_equal(image, f["/entry/data/data"][()])


def test_serving_is_read_only_without_an_api_key(served):
    from tiled.client import from_uri

    catalog = from_uri(served)
    with pytest.raises(httpx.HTTPStatusError):
        catalog.create_container(key="intruder")
    assert "intruder" not in catalog


def test_serve_without_a_catalog_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(app, ["serve", "--catalog", str(tmp_path / "none")])
    assert result.exit_code == 2 and "no catalog" in result.output
