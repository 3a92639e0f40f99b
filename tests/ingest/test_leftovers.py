"""Issue 14, class 8: a run in Tiled without stop is replaced by the complete run of a file only when
nobody is writing it any more (unchanged for --leftover-after seconds, as its documents tell);
while another writer (a live TiledWriter) is still writing it, it is left alone and reported
`in-progress-elsewhere`, and the file is looked at again on the next pass."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from event_model import compose_run

from ingester.config import redact_uri
from ingester.ledger.store import Ledger
from ingester.target.targets import open_embedded
from support.facility import Target


def write_run_file(path: Path, age: float) -> tuple[str, list[tuple[str, dict]]]:
    """A complete scalar run whose documents were made `age` seconds ago; (uid, documents)."""
    now = time.time() - age
    bundle = compose_run(time=now - 1)
    desc = bundle.compose_descriptor(name="primary", data_keys={"I0": {"dtype": "number", "shape": [], "source": "PV"}})
    desc.descriptor_doc["time"] = now - 0.5
    docs = [("start", bundle.start_doc), ("descriptor", desc.descriptor_doc)]
    for n in range(3):
        docs.append(
            ("event", desc.compose_event(data={"I0": float(n)}, timestamps={"I0": now}, time=now - 0.1 * (3 - n)))
        )
    docs.append(("stop", bundle.compose_stop(time=now)))
    path.write_text("".join(json.dumps([name, doc]) + "\n" for name, doc in docs))
    return bundle.start_doc["uid"], docs


@pytest.fixture(params=["embedded", "server"])
def target(request, tmp_path):
    server = request.getfixturevalue("server") if request.param == "server" else None
    return Target(tmp_path, server)


def tiledwriter_wrote_all_but_the_stop(target: Target, docs: list[tuple[str, dict]]) -> None:
    """TiledWriter, fed the run up to its last event (as a live writer is, mid-run)."""
    from bluesky_tiled_plugins.writing.tiled_writer import TiledWriter

    if target.server is None:
        open_embedded(target.catalog).close()  # TiledWriter writes where ingest-dir will look
    with target.client() as root:
        writer = TiledWriter(root, batch_size=1)
        for name, doc in docs[:-1]:
            writer(name, doc)


def run_metadata(target: Target, uid: str) -> dict:
    with target.client() as root:
        return dict(root[uid].metadata)


def ledger_files(target: Target, tmp_path: Path) -> list[str]:
    url = f"sqlite:///{target.catalog / 'ledger.db'}" if target.server is None else target.ledger
    key = str(target.catalog.absolute()) if target.server is None else redact_uri(target.server.uri)
    with Ledger.open(url, key) as book:
        return [record.path for record in book.files()]


def test_a_run_still_being_written_is_left_alone_then_replaced_once_quiet(target, tmp_path):
    report = tmp_path / "report.json"
    path = target.folder / "live.jsonl"
    uid, docs = write_run_file(path, age=0)
    tiledwriter_wrote_all_but_the_stop(target, docs)

    result = target.invoke("ingest-dir", path, "--report", report)
    assert result.exit_code == 0, result.output
    entry = json.loads(report.read_text())["files"][0]
    assert entry["status"] == "in-progress-elsewhere"
    assert "another writer is still writing it" in entry["reason"]
    metadata = run_metadata(target, uid)
    assert "stop" not in metadata and "_ingest" not in metadata  # TiledWriter's run, untouched
    assert ledger_files(target, tmp_path) == []  # not settled: the next pass looks at the file again

    time.sleep(1.5)  # the run's newest document is now older than a 1-second --leftover-after
    again = target.invoke("ingest-dir", path, "--leftover-after", "1", "--report", report)
    assert again.exit_code == 0, again.output
    assert json.loads(report.read_text())["files"][0]["status"] == "ingested"
    metadata = run_metadata(target, uid)
    assert "stop" in metadata and metadata["_ingest"]["state"] == "complete"


def test_a_run_its_writer_left_long_ago_is_replaced_at_once(target, tmp_path):
    report = tmp_path / "report.json"
    path = target.folder / "dead.jsonl"
    uid, docs = write_run_file(path, age=3600)
    tiledwriter_wrote_all_but_the_stop(target, docs)
    result = target.invoke("ingest-dir", path, "--report", report)  # the default --leftover-after: 300 s
    assert result.exit_code == 0, result.output
    assert json.loads(report.read_text())["files"][0]["status"] == "ingested"
    metadata = run_metadata(target, uid)
    assert "stop" in metadata and metadata["_ingest"]["state"] == "complete"
    with target.client() as root:
        assert len(root[uid]["primary"].base["internal"].read()) == 3
