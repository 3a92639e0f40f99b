"""An external key is served by Datums (its events hold their ids) or by a StreamResource (its events
leave it out), whatever its `external` label says; one served by neither is reported."""

from __future__ import annotations

import json

from ingester.read.validate import validate_file
from support.corpus import FIXTURES
from support.tree_compare import load_documents

SOURCE = FIXTURES / "facility" / "stream_key_with_datums.jsonl"


def test_stream_label_on_datums_and_filestore_label_on_stream_datums_validate():
    assert validate_file(SOURCE).status == "ok"


def test_a_key_served_by_nothing_is_reported_on_its_descriptor(tmp_path):
    docs = [(n, d) for n, d in load_documents(SOURCE) if n not in ("stream_resource", "stream_datum")]
    path = tmp_path / "no_roi.jsonl"
    path.write_text("".join(json.dumps([n, d]) + "\n" for n, d in docs))
    report = validate_file(path)
    assert report.status == "invalid"
    [problem] = [p for run in report.runs for p in run.problems]
    assert problem.line == 2 and problem.name == "descriptor"
    assert problem.reason == "external key 'roi' of stream 'primary' is in no event and has no stream_resource"
