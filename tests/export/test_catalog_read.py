"""Runs of the embedded catalog read through Tiled's catalog adapter (ingester/export/catalog_read.py)
give the documents that reading them over HTTP gives (ingester/export/documents.py `read_run`, which
test_documents.py holds against bluesky-tiled-plugins' own export), for every run of catalog A:
scalar and array columns, moved columns, renamed keys, configuration updates, external files."""

from __future__ import annotations

import json

import pytest

from ingester.export.catalog_read import read_run_in_catalog
from ingester.export.documents import external_nodes, read_run, run_documents
from ingester.target.targets import open_embedded


def _as_json(documents) -> list[str]:
    """Each document as JSON: plain values only (json refuses numpy's), and NaN equal to NaN."""
    return [json.dumps(item, sort_keys=True) for item in documents]


def test_every_run_reads_the_same_through_the_adapter_as_over_http(catalog_a):
    with open_embedded(catalog_a) as target:
        uids = list(target.root)
        assert len(uids) > 10
        external = 0
        for uid in uids:
            over_http = read_run(target.root, uid)
            direct = read_run_in_catalog(target.writer_root, uid)
            assert [name for name, _, _ in direct.streams] == [name for name, _, _ in over_http.streams], uid
            assert _as_json(run_documents(direct)) == _as_json(run_documents(over_http)), uid
            files = [node.paths() for node in external_nodes(direct)]
            assert files == [node.paths() for node in external_nodes(over_http)], uid
            external += len(files)
        assert external > 5


def test_a_run_not_in_the_catalog_is_an_error_naming_it(catalog_a):
    with open_embedded(catalog_a) as target, pytest.raises(Exception, match="not-a-run"):
        read_run_in_catalog(target.writer_root, "not-a-run")
