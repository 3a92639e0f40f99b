"""Issue 15, part 4: the round trip. The fixtures in catalog A, `export` A into a pack, the pack moved
to another folder (the original data taken away), `ingest-dir PACK` into a fresh catalog B: the trees
of A and B are equal (tests/support/tree_compare: keys, specs, metadata minus `_ingest`, shapes,
dtypes, data), every run of B passes bluesky-tiled-plugins' validator with try_reading=True, and an
external file altered in the pack is refused by name. The same through `--tiled-uri` on both sides.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from bluesky_tiled_plugins.writing.validator import validate

from ingester.cli.app import app
from ingester.target.targets import open_embedded, open_remote
from support.cli import ingest, runner
from support.servers import TiledServer
from support.tree_compare import assert_runs_equal, snapshot_run


def export(*args) -> object:
    return runner.invoke(app, ["export", *map(str, args)], catch_exceptions=False)


def carry(catalog_a: Path, folder: Path, *options: str) -> Path:
    """Export every run of A into a pack, then move the pack elsewhere; the moved pack."""
    result = export(folder / "pack", "--catalog", catalog_a, *options)
    assert result.exit_code == 0, result.output
    moved = folder / "elsewhere" / "pack"
    moved.parent.mkdir()
    shutil.move(folder / "pack", moved)
    return moved


def assert_catalogs_equal(root_a, dir_a: Path, root_b, dir_b: Path) -> None:
    assert sorted(root_a) == sorted(root_b)
    for uid in root_a:
        assert_runs_equal(snapshot_run(root_a[uid], dir_a), snapshot_run(root_b[uid], dir_b), uid)


def assert_files_from(root, pack: Path) -> None:
    """Every external file of every run of `root` is registered from inside `pack`."""
    for uid in root:
        run = root[uid].base
        for stream in run:
            for key, node in run[stream].base.items():
                source = node.data_sources()[0]
                if str(source.management).endswith("external"):
                    assert all(str(pack) in asset.data_uri for asset in source.assets), (uid, key)


def assert_every_run_valid(root) -> None:
    for uid in root:
        assert validate(root[uid], fix_errors=False, try_reading=True, raise_on_error=True, write_notes=False), uid


@pytest.mark.parametrize("format", ["jsonl", "msgpack"])
def test_round_trip_through_a_moved_pack(catalog_a, tmp_path, format):
    pack = carry(catalog_a, tmp_path, "--format", format)
    result = ingest(pack, "--catalog", tmp_path / "b", "--jobs", "1", "--processes", "0")
    assert result.exit_code == 0, result.output
    with open_embedded(catalog_a) as a, open_embedded(tmp_path / "b", [pack]) as b:
        assert_catalogs_equal(a.root, catalog_a, b.root, tmp_path / "b")
        assert_files_from(b.root, pack)
        assert_every_run_valid(b.root)


def test_an_altered_file_in_the_pack_is_refused_by_name(catalog_a, tmp_path):
    pack = carry(catalog_a, tmp_path)
    altered = sorted((pack / "external_files").rglob("blob-count.h5"))[0]
    data = bytearray(altered.read_bytes())
    data[-1] ^= 0xFF
    altered.write_bytes(bytes(data))
    result = ingest(pack, "--catalog", tmp_path / "b", "--jobs", "1", "--processes", "0")
    assert result.exit_code == 1
    assert "blob-count.h5" in result.output
    with open_embedded(tmp_path / "b") as b:
        ingested = set(b.root)
    with open_embedded(catalog_a) as a:
        refused = {uid for uid in a.root if "blob-count.h5" in str(snapshot_run(a.root[uid], catalog_a).streams)}
        assert refused and not refused & ingested
        assert ingested == set(a.root) - refused


def test_round_trip_through_tiled_servers(catalog_a, tmp_path):
    """A served by one SimpleTiledServer, exported over HTTP; the pack ingested into another over HTTP."""
    source = catalog_a.parent / "source"
    server_a = TiledServer(tmp_path / "tiled-a", source)
    try:
        result = runner.invoke(
            app, ["ingest-dir", str(source / "good"), "--tiled-uri", server_a.uri, "--ledger", f"sqlite:///{tmp_path}/l-a.db"],
            env={"TILED_API_KEY": server_a.api_key}, catch_exceptions=False,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["export", str(tmp_path / "pack"), "--tiled-uri", server_a.uri],
                               env={"TILED_API_KEY": server_a.api_key}, catch_exceptions=False)  # fmt: skip
        assert result.exit_code == 0, result.output
        moved = tmp_path / "elsewhere"
        shutil.move(tmp_path / "pack", moved)
        server_b = TiledServer(tmp_path / "tiled-b", moved)
        try:
            result = runner.invoke(
                app, ["ingest-dir", str(moved), "--tiled-uri", server_b.uri, "--ledger", f"sqlite:///{tmp_path}/l-b.db"],
                env={"TILED_API_KEY": server_b.api_key}, catch_exceptions=False,
            )  # fmt: skip
            assert result.exit_code == 0, result.output
            with open_remote(server_a.uri, server_a.api_key) as a, open_remote(server_b.uri, server_b.api_key) as b:
                assert len(list(a.root)) > 5
                assert_catalogs_equal(a.root, tmp_path / "tiled-a", b.root, tmp_path / "tiled-b")
                assert_files_from(b.root, moved)
                assert_every_run_valid(b.root)
        finally:
            server_b.stop()
    finally:
        server_a.stop()
