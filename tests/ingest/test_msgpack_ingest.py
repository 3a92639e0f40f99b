"""`ingest-dir` on a suitcase-msgpack file: incomplete while cut short, then ingested as its JSON Lines twin."""

from __future__ import annotations

import json

import msgpack
import msgpack_numpy

from ingester.target.targets import open_embedded
from support.cli import catalog_uids, ingest
from support.corpus import EXPECTED, FIXTURES


def test_a_msgpack_file_cut_short_waits_then_is_ingested(tmp_path):
    pairs = [json.loads(line) for line in (FIXTURES / "good" / "scan_baseline.jsonl").read_text().splitlines()]
    packed = b"".join(msgpack.packb(pair, default=msgpack_numpy.encode, use_bin_type=True) for pair in pairs)
    path, catalog = tmp_path / "scan.msgpack", tmp_path / "catalog"
    path.write_bytes(packed[:-4])
    report = tmp_path / "report.json"
    result = ingest(path, "--catalog", catalog, "--report", report)
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(report.read_text())["files"]
    assert entry["status"] == "incomplete" and "truncated" in entry["reason"]
    assert entry["line"] == 1  # the run, by the number of its start document
    assert not catalog_uids(catalog)
    path.write_bytes(packed)
    assert ingest(path, "--catalog", catalog).exit_code == 0
    uid = EXPECTED["good/scan_baseline.jsonl"]["uid"]
    with open_embedded(catalog) as target:
        run = target.root[uid]
        assert run.metadata["_ingest"]["source"]["format"] == "msgpack"
        assert len(run["primary"].base["internal"].read()) == 5
