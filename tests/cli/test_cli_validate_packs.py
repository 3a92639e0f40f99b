"""`ingester validate PACK`: a databroker-pack folder's documents, and what its manifests list but it lacks."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from ingester.cli.app import app
from support.corpus import FIXTURES

HASHED = "f68eb1f7832e0d5082f63036801333f1"


def invoke(*args: str):
    return CliRunner().invoke(app, ["validate", *map(str, args)])


def test_every_pack_of_the_fixtures_validates(tmp_path):
    result = invoke("--json", FIXTURES / "packs")
    assert result.exit_code == 0, result.output
    reports = json.loads(result.output)
    assert len(reports) == 9 and {r["status"] for r in reports} == {"ok"}
    assert {r["format"] for r in reports} == {"suitcase-jsonl", "msgpack"}


def test_only_the_packs_documents_are_read_whatever_else_it_holds(tmp_path):
    pack = tmp_path / "pack"
    shutil.copytree(FIXTURES / "packs" / "jsonl-copy", pack)
    (pack / "external_files" / "notes.json").write_text("not a run file, and not the pack's documents\n")
    result = invoke(pack)
    assert result.exit_code == 0, result.output
    assert "notes.json" not in result.output


def test_files_the_manifests_list_but_the_pack_lacks_are_named(tmp_path):
    pack = tmp_path / "pack"
    shutil.copytree(FIXTURES / "packs" / "msgpack-copy", pack)
    document = sorted((pack / "documents").iterdir())[0]
    document.unlink()
    data = pack / "external_files" / HASHED / "data" / "f7c030_2.npy"
    data.unlink()
    result = invoke(pack)
    assert result.exit_code == 1
    assert f"{document}:0: - - : listed in documents_manifest.txt but not in the pack" in result.output
    manifest = f"external_files_manifest_{HASHED}.txt"
    assert f"{data}:0: - - : listed in {manifest} but not in the pack" in result.output
    assert f"{data}: invalid" in result.output


def test_a_catalog_yml_of_another_kind_is_not_a_pack(tmp_path):
    folder = tmp_path / "not-a-pack"
    folder.mkdir()
    (folder / "catalog.yml").write_text("sources:\n  db:\n    driver: bluesky-mongo-normalized-catalog\n")
    shutil.copy(FIXTURES / "good" / "scan_baseline.jsonl", folder / "run.jsonl")
    result = invoke(folder)
    assert result.exit_code == 0, result.output
    assert f"{folder / 'run.jsonl'}: ok" in result.output
