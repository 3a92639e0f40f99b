"""msgpack run files (suitcase-msgpack, databroker-pack): read as JSON Lines are, positions as document numbers."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import msgpack
import msgpack_numpy
import numpy
import pytest
from typer.testing import CliRunner

from ingester.cli.app import app
from ingester.problems import IngestError
from ingester.read.reader import read_documents
from ingester.read.validate import validate_file
from support.corpus import FIXTURES


def packed(documents) -> bytes:
    """Documents as suitcase-msgpack writes them: use_bin_type, numpy through msgpack-numpy."""
    return b"".join(msgpack.packb(list(pair), default=msgpack_numpy.encode, use_bin_type=True) for pair in documents)


def jsonl_documents(name: str = "scan_baseline.jsonl") -> list:
    return [json.loads(line) for line in (FIXTURES / "good" / name).read_text().splitlines()]


def test_a_msgpack_file_reads_as_its_jsonl_twin_with_document_numbers(tmp_path):
    documents = jsonl_documents()
    path = tmp_path / "run.data"  # told by content, not by name
    path.write_bytes(packed(documents))
    stream = read_documents(path)
    read = [(d.name, d.doc, d.line) for d in stream]
    assert stream.format == "msgpack" and stream.truncated is None
    assert [(name, doc) for name, doc, _ in read] == [tuple(pair) for pair in documents]
    assert [str(line) for *_, line in read] == [f"document {n}" for n in range(1, len(documents) + 1)]


def test_numpy_values_come_back_as_plain_python(tmp_path):
    documents = jsonl_documents()
    event = next(doc for name, doc in documents if name == "event")
    event["data"]["motor1"] = numpy.float32(1.5)
    event["timestamps"]["motor1"] = numpy.float64(event["timestamps"]["motor1"])
    event["seq_num"] = numpy.int64(event["seq_num"])
    event["configuration"] = numpy.arange(3, dtype=numpy.int64)
    path = tmp_path / "run.msgpack"
    path.write_bytes(packed(documents))
    got = next(d.doc for d in read_documents(path) if d.name == "event")
    assert got["data"]["motor1"] == 1.5 and type(got["data"]["motor1"]) is float
    assert type(got["seq_num"]) is int and type(got["timestamps"]["motor1"]) is float
    assert got.pop("configuration") == [0, 1, 2]
    del event["configuration"]
    path.write_bytes(packed(documents))
    assert validate_file(path).status == "ok"


def test_a_file_cut_short_is_incomplete_at_the_document_it_cuts(tmp_path):
    documents = jsonl_documents()
    path = tmp_path / "run.msgpack"
    path.write_bytes(packed(documents)[:-5])
    report = validate_file(path)
    assert report.status == "incomplete"
    assert str(report.truncated).startswith(f"{path}:document {len(documents)}: - - : truncated")
    with pytest.raises(IngestError, match=f":document {len(documents)}: .*truncated"):
        list(read_documents(path, strict=True))


def test_gzip_compressed_msgpack_is_read(tmp_path):
    path = tmp_path / "run.msgpack.gz"
    path.write_bytes(gzip.compress(packed(jsonl_documents()), mtime=0))
    stream = read_documents(path)
    assert len(list(stream)) == len(jsonl_documents()) and stream.compressed and stream.format == "msgpack"


def test_malformed_bytes_are_refused_at_their_document(tmp_path):
    documents = jsonl_documents()
    good = packed(documents[:3])
    path = tmp_path / "run.msgpack"
    path.write_bytes(good + b"\x92\xc1" + packed(documents[3:]))  # 0xc1 is never used in msgpack
    report = validate_file(path)
    assert report.status == "invalid"
    assert len(report.problems) == 1 and report.problems[0].line == 4
    assert str(report.problems[0]).startswith(f"{path}:document 4: - - : malformed msgpack")


def test_a_pair_that_is_not_name_and_document_is_refused(tmp_path):
    path = tmp_path / "run.msgpack"
    path.write_bytes(packed(jsonl_documents()[:2]) + msgpack.packb(["event", [1, 2]]))
    with pytest.raises(IngestError, match=":document 3: .*expected a document name"):
        list(read_documents(path))


def test_validate_names_documents_in_every_problem(tmp_path):
    documents = jsonl_documents()
    events = [doc for name, doc in documents if name == "event"]
    events[2]["uid"] = events[0]["uid"]  # duplicate uid
    path = tmp_path / "run.msgpack"
    path.write_bytes(packed(documents))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    problem_lines = [line for line in result.output.splitlines() if " : " in line]
    assert problem_lines and all(line.startswith(f"{path}:document ") for line in problem_lines), result.output
    assert "already used on document" in result.output
    assert f"{path}: invalid" in result.output


def test_a_document_over_the_limit_is_refused_without_reading_it_whole(tmp_path):
    from ingester.read.msgpackio import MsgpackFault, unpack_documents

    path: Path = tmp_path / "big.msgpack"
    path.write_bytes(packed(jsonl_documents()[:1]) + msgpack.packb(["event", {"blob": "x" * 5000}]))
    with open(path, "rb") as fh, pytest.raises(MsgpackFault) as fault:
        list(unpack_documents(fh, 1024))
    assert fault.value.number == 2 and "longer than 1024 bytes" in fault.value.reason
