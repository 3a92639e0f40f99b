"""Catalog A for the export tests: the good and facility fixtures ingested once a module, their
data in a folder of the test's own (so that a test may take the originals away)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from support.cli import ingest
from support.corpus import FIXTURES
from support.tree_compare import load_documents, with_config_update

# The facility files that are refused by design (a resource naming no file, a missing detector file).
REFUSED_BY_DESIGN = ("computed_resource.jsonl", "missing_detector_file.jsonl")
# A run derived from two_runs.jsonl whose primary stream has a second descriptor (_config_updates).
CONFIG_UPDATE_UID = "c0f19000-0000-4000-8000-00000000da7a"


def source_folder(folder: Path) -> Path:
    """The good and facility run files with their data, copied under `folder`."""
    source = folder / "source"
    shutil.copytree(FIXTURES / "good", source / "good")
    shutil.copytree(FIXTURES / "facility", source / "facility")
    for name in REFUSED_BY_DESIGN:
        (source / "facility" / name).unlink()
    derived = with_config_update(load_documents(FIXTURES / "good" / "two_runs.jsonl"), CONFIG_UPDATE_UID)
    (source / "good" / "config_update.jsonl").write_text("".join(json.dumps([n, d]) + "\n" for n, d in derived))
    return source


@pytest.fixture(scope="module")
def catalog_a(tmp_path_factory) -> Path:
    """An embedded catalog holding every run of the good and facility fixtures."""
    folder = tmp_path_factory.mktemp("catalog-a")
    source = source_folder(folder)
    result = ingest(source, "--catalog", folder / "a", "--jobs", "1", "--processes", "0")
    assert result.exit_code == 0, result.output
    return folder / "a"
