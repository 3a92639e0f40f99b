"""The reader: every format, gzip, NaN, truncated tails, bad bytes — and fuzzing."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingester.problems import IngestError
from ingester.read.reader import read_documents

DOCS = [
    ["start", {"uid": "r1", "time": 1.0}],
    ["descriptor", {"uid": "d1", "run_start": "r1", "name": "primary", "time": 1.0, "data_keys": {}}],
    [
        "event",
        {"uid": "e1", "descriptor": "d1", "seq_num": 1, "time": 2.0, "data": {"x": 1.5}, "timestamps": {"x": 2.0}},
    ],
    ["stop", {"uid": "s1", "run_start": "r1", "time": 3.0, "exit_status": "success"}],
]
NAMES = [name for name, _ in DOCS]


def suitcase(docs=DOCS) -> str:
    return "".join(json.dumps(d) + "\n" for d in docs)


def name_doc(docs=DOCS) -> str:
    return "".join(json.dumps({"name": n, "doc": d}) + "\n" for n, d in docs)


def json_writer(docs=DOCS) -> str:
    return "[\n" + ",\n".join(json.dumps({"name": n, "doc": d}) for n, d in docs) + "\n]"


def read(path: Path, strict=False):
    stream = read_documents(path, strict=strict)
    return stream, [(d.name, d.line) for d in stream]


@pytest.mark.parametrize(
    "text, fmt, lines",
    [
        (suitcase(), "suitcase-jsonl", [1, 2, 3, 4]),
        (name_doc(), "name-doc-jsonl", [1, 2, 3, 4]),
        (json_writer(), "json-array", [2, 3, 4, 5]),
        (json.dumps(DOCS, indent=2), "json-array", None),  # lines: see the next test
        (json.dumps(DOCS), "json-array", [1, 1, 1, 1]),
        ("\n\n" + suitcase(), "suitcase-jsonl", [3, 4, 5, 6]),
    ],
    ids=["suitcase", "name-doc", "jsonwriter", "pretty-array", "one-line-array", "leading-blank"],
)
def test_formats_are_detected_from_content(tmp_path, text, fmt, lines):
    path = tmp_path / "run.data"  # the name says nothing about the format
    path.write_text(text)
    stream, got = read(path)
    assert stream.format == fmt
    assert [n for n, _ in got] == NAMES
    if lines is not None:
        assert [line for _, line in got] == lines
    assert stream.truncated is None


def test_pretty_array_elements_keep_their_starting_line(tmp_path):
    path = tmp_path / "run.json"
    text = json.dumps(DOCS, indent=2)
    path.write_text(text)
    _, got = read(path)
    starts = [i + 1 for i, line in enumerate(text.splitlines()) if line.startswith("  [")]
    assert [line for _, line in got] == starts


@pytest.mark.parametrize("writer", [suitcase, name_doc, json_writer])
def test_gzip_is_detected_from_magic_bytes(tmp_path, writer):
    path = tmp_path / "run.jsonl"  # no .gz suffix on purpose
    path.write_bytes(gzip.compress(writer().encode()))
    stream, got = read(path)
    assert stream.compressed
    assert [n for n, _ in got] == NAMES


def test_nan_and_infinity_as_python_json_writes_them(tmp_path):
    event = ["event", {"uid": "e", "data": {"a": float("nan"), "b": float("inf"), "c": float("-inf")}}]
    path = tmp_path / "nan.jsonl"
    path.write_text(json.dumps(event) + "\n")
    (doc,) = list(read_documents(path))
    data = doc.doc["data"]
    assert data["a"] != data["a"] and data["b"] == float("inf") and data["c"] == float("-inf")


def test_truncated_last_line_is_incomplete_not_an_error(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text(suitcase()[:-25])
    stream, got = read(path)
    assert [n for n, _ in got] == NAMES[:3]
    assert stream.truncated is not None and stream.truncated.line == 4
    assert "truncated" in stream.truncated.reason


def test_truncated_last_line_is_an_error_when_strict(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text(suitcase()[:-25])
    with pytest.raises(IngestError) as err:
        read(path, strict=True)
    assert err.value.problem.line == 4 and "truncated" in err.value.problem.reason
    assert str(err.value).startswith(f"{path}:4: ")


def test_truncated_gzip_stream_is_incomplete(tmp_path):
    path = tmp_path / "run.jsonl.gz"
    path.write_bytes(gzip.compress(suitcase().encode())[:-12])
    stream, _ = read(path)
    assert stream.truncated is not None


def test_unclosed_json_array_is_incomplete(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json_writer()[:-2])
    stream, got = read(path)
    assert [n for n, _ in got] == NAMES
    assert stream.truncated is not None


@pytest.mark.parametrize(
    "content, line, reason",
    [
        (b"", 1, "empty file"),
        (b"   \n\n", 1, "empty file"),
        (
            suitcase(DOCS[:1]).encode() + b'["event", {"uid": "\xff\xfe"}]\n' + suitcase(DOCS[1:]).encode(),
            2,
            "not UTF-8",
        ),
        (suitcase(DOCS[:2]).encode() + b'["event", {"uid": \n' + suitcase(DOCS[2:]).encode(), 3, "malformed JSON"),
        (b"hello world\n", 1, "not a run file"),
        (suitcase(DOCS[:1]).encode() + b"[1, 2, 3]\n", 2, "expected a [name, doc] pair"),
        (suitcase(DOCS[:1]).encode() + b'[1, {"uid": "x"}]\n', 2, "document name"),
        (b"\x1f\x8bnot really gzip", 1, "gzip"),
    ],
    ids=["empty", "blank", "not-utf8", "malformed-middle", "not-json", "not-a-pair", "name-not-string", "bad-gzip"],
)
def test_bad_input_names_file_line_and_reason(tmp_path, content, line, reason):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(IngestError) as err:
        read(path)
    problem = err.value.problem
    assert problem.path == str(path)
    assert problem.line == line
    assert reason in problem.reason


def test_missing_file_is_a_problem_not_a_traceback(tmp_path):
    with pytest.raises(IngestError) as err:
        read(tmp_path / "nope.jsonl")
    assert "cannot open" in err.value.problem.reason


def test_reading_never_modifies_the_file(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text(suitcase())
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    list(read_documents(path))
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


_fuzz = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_fuzz
@given(st.binary(max_size=400))
def test_fuzz_arbitrary_bytes_never_raise_unhandled(tmp_path, data):
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(data)
    try:
        for document in read_documents(path):
            assert isinstance(document.name, str) and isinstance(document.doc, dict)
    except IngestError as err:
        assert err.problem.reason


@_fuzz
@given(
    st.integers(min_value=0, max_value=len(suitcase().encode()) - 1), st.binary(min_size=0, max_size=5), st.booleans()
)
def test_fuzz_mutated_valid_files_never_raise_unhandled(tmp_path, position, insert, gz):
    data = bytearray(suitcase().encode())
    data[position : position + len(insert)] = insert
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(gzip.compress(bytes(data)) if gz else bytes(data))
    try:
        list(read_documents(path))
    except IngestError as err:
        assert err.problem.path == str(path)
