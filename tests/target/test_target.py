"""ingester.target (targets, layout, serve) against real Tiled: embedded in-process, remote, served."""

from __future__ import annotations

import os
import threading

import httpx
import pytest
import uvicorn
from tiled.client import from_uri
from tiled.server import SimpleTiledServer
from tiled.server.simple import ThreadedServer

from ingester.target.layout import CatalogLayout
from ingester.target.serve import build_catalog_app
from ingester.target.targets import open_embedded, open_remote, open_target
from support.run_builder import PROVENANCE, scalar_run, write_planned


def open_files_under(folder) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


@pytest.fixture(scope="module")
def written_catalog(tmp_path_factory):
    """An embedded catalog with one small run in it, closed again; yields (folder, run)."""
    folder = tmp_path_factory.mktemp("target")
    builder = scalar_run(folder, n=4)
    run = builder.finish()
    threads_before = set(threading.enumerate())
    with open_target(catalog_dir=folder / "cat", readable_roots=[folder]) as target:
        assert target.embedded and target.description == str(folder / "cat")
        write_planned(target.root, run, builder.batches(), provenance=PROVENANCE)
        assert open_files_under(folder / "cat")
    # closed: no database file left open, no thread of ours still running
    assert open_files_under(folder / "cat") == []
    # anyio keeps idle daemon workers for a while after its event loop is gone; they end on their own.
    transient = ("ThreadPoolExecutor", "AnyIO worker thread")
    leftover = [t for t in set(threading.enumerate()) - threads_before if not t.name.startswith(transient)]
    assert leftover == []
    return folder, run


def test_embedded_catalog_layout_and_persistence(written_catalog):
    folder, run = written_catalog
    layout = CatalogLayout(folder / "cat")
    assert layout.catalog_db.is_file() and layout.tabular_db.is_file() and layout.data_dir.is_dir()
    with open_embedded(folder / "cat") as target:  # reopening does not initialise again
        assert run.uid in target.root
        table = target.root[run.uid]["primary"].base["internal"].read()
        assert table["motor"].tolist() == [0.0, 0.5, 1.0, 1.5]


def test_close_is_idempotent(written_catalog):
    target = open_embedded(written_catalog[0] / "cat")
    target.close()
    target.close()


def test_remote_target_writes_through_http(tmp_path):
    builder = scalar_run(tmp_path, n=3)
    run = builder.finish()
    server = SimpleTiledServer(directory=tmp_path / "server", readable_storage=[tmp_path])
    try:
        base_uri = server.uri.split("?")[0]
        with open_remote(base_uri, server.api_key) as target:
            assert not target.embedded
            assert server.api_key not in target.description
            write_planned(target.root, run, builder.batches(), provenance=PROVENANCE)
        client = from_uri(base_uri, api_key=server.api_key)
        assert client[run.uid]["primary"].read()["det"].values.tolist() == [0, 10, 20]
        client.context.close()
        with open_remote(server.uri, None) as target:  # here the key rides in the URI's query
            assert server.api_key not in target.description and "api_key" not in target.description
            assert run.uid in target.root
    finally:
        server.close()


def test_served_catalog_is_browsable_by_bluesky_client(written_catalog):
    folder, run = written_catalog
    app = build_catalog_app(folder / "cat", readable_roots=[folder], api_key="secretforwriting")
    server = ThreadedServer(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    with server.run_in_thread() as base_url:
        client = from_uri(f"{base_url}/api/v1")  # anonymous: reading is allowed
        try:
            assert type(client).__name__ == "CatalogOfBlueskyRuns"
            bluesky_run = client[run.uid]
            assert bluesky_run["primary"].read()["motor"].values.tolist() == [0.0, 0.5, 1.0, 1.5]
            with pytest.raises(httpx.HTTPStatusError):
                client.create_container(key="not-allowed")
        finally:
            client.context.close()


def test_serving_refuses_a_folder_without_catalog_and_a_bad_key(tmp_path, written_catalog):
    with pytest.raises(FileNotFoundError):
        build_catalog_app(tmp_path / "nothing-here")
    assert not (tmp_path / "nothing-here" / "catalog.db").exists()
    with pytest.raises(ValueError, match="letters and digits") as info:
        build_catalog_app(written_catalog[0] / "cat", api_key="not-alnum!")
    assert "not-alnum!" not in str(info.value)


def test_opening_module_does_not_import_the_server_side():
    import subprocess
    import sys

    code = "import sys, ingester.target.targets, ingester.write.writer; print(any(m.startswith('tiled.server') for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
