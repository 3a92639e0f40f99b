"""Tail check: a run file ends with a stop document only when its last line or array element is one."""

from __future__ import annotations

import gzip
import json

import pytest

from ingester.watch.tail import Ending, ending_of, file_ending, is_stop_document
from support.corpus import FIXTURES

STOP = {"uid": "s1", "time": 1.0, "run_start": "r1", "exit_status": "success", "reason": "", "num_events": {}}
START = ["start", {"uid": "r1", "time": 0.0}]
EVENT = ["event", {"uid": "e1", "data": {"x": 1.5}, "seq_num": 1}]


def lines(*items) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


@pytest.mark.parametrize(
    "content",
    [
        lines(START, EVENT, ["stop", STOP]),
        lines({"name": "start", "doc": START[1]}, {"name": "stop", "doc": STOP}),
        lines(START, ["stop", {**STOP, "reason": 'oops [}] " {'}]) + b"\n\n",
        lines(START, ["event", {"data": {"x": float("nan")}}], ["stop", {**STOP, "t": float("inf")}]),
        b"[\n" + json.dumps(START).encode() + b",\n" + json.dumps(["stop", STOP]).encode() + b"\n]",
        json.dumps([START, ["stop", STOP]]).encode(),
        json.dumps([{"name": "start", "doc": START[1]}, {"name": "stop", "doc": STOP}], indent=2).encode() + b"\n",
        b'[["stop", {"reason": "a \\\\\\" ] [ {", "uid": "s"}]]',
    ],
    ids=[
        "suitcase",
        "name-doc",
        "brackets-in-strings",
        "nan",
        "array-lines",
        "array-one-line",
        "array-pretty",
        "escapes",
    ],  # fmt: skip
)
def test_ends_with_stop(content):
    assert ending_of(content, whole=True) is Ending.STOP


@pytest.mark.parametrize(
    "content",
    [
        b"",
        lines(START, EVENT),
        lines(START) + json.dumps(["stop", STOP]).encode(),  # no newline yet
        lines(START) + json.dumps(["stop", STOP]).encode()[:-5],
        lines(START, {"name": "stop", "doc": "not a document"}),
        lines(START, ["stop"]),
        b"[\n" + json.dumps(START).encode() + b",\n" + json.dumps(["stop", STOP]).encode() + b",\n",  # array not closed
        b"[\n" + json.dumps(START).encode() + b",\n" + json.dumps(["event", STOP]).encode() + b"\n]",
        b"[]",
    ],
    ids=[
        "empty",
        "no-stop",
        "no-newline",
        "half-line",
        "stop-not-dict",
        "stop-alone",
        "array-open",
        "array-no-stop",
        "array-empty",
    ],  # fmt: skip
)
def test_still_open(content):
    assert ending_of(content, whole=True) is Ending.OPEN


def test_line_that_began_before_the_tail_is_not_trusted():
    stop_line = lines(["stop", STOP])
    assert ending_of(stop_line, whole=True) is Ending.STOP
    assert ending_of(stop_line, whole=False) is Ending.OPEN


def test_only_the_tail_is_read(tmp_path):
    path = tmp_path / "long.jsonl"
    path.write_bytes(lines(START) + lines(*[EVENT] * 20_000) + lines(["stop", STOP]))
    assert path.stat().st_size > 64 * 1024
    assert file_ending(path) is Ending.STOP
    assert file_ending(path, tail_bytes=len(lines(["stop", STOP])) + 1) is Ending.STOP
    assert file_ending(path, tail_bytes=40) is Ending.OPEN  # the stop line does not fit


def test_gzip_is_not_tailed(tmp_path):
    path = tmp_path / "run.jsonl"  # told by content, not by name
    path.write_bytes(gzip.compress(lines(START, EVENT)))
    assert file_ending(path) is Ending.COMPRESSED


def test_missing_file_looks_open(tmp_path):
    assert file_ending(tmp_path / "gone.jsonl") is Ending.OPEN


def test_fixtures(tmp_path):
    for path in sorted((FIXTURES / "good").glob("*.json*")):
        expected = Ending.COMPRESSED if path.name.endswith(".gz") else Ending.STOP
        assert file_ending(path) is expected, path.name
    for path in sorted((FIXTURES / "incomplete").glob("*.json*")):
        assert file_ending(path) is Ending.OPEN, path.name


def test_is_stop_document():
    assert is_stop_document(["stop", {}])
    assert is_stop_document({"name": "stop", "doc": {}})
    assert not is_stop_document(["start", {}])
    assert not is_stop_document({"name": "stop"})
    assert not is_stop_document(None)


def test_a_msgpack_file_ends_with_stop_only_when_its_last_pair_is_a_whole_stop(tmp_path):
    import msgpack

    pairs = [["start", {"uid": "r1"}], ["event", {"uid": "e1", "data": {"x": b"stop"}}], ["stop", {"uid": "s1"}]]
    packed = [msgpack.packb(pair, use_bin_type=True) for pair in pairs]
    path = tmp_path / "run.msgpack"
    path.write_bytes(b"".join(packed))
    assert file_ending(path) is Ending.STOP
    path.write_bytes(b"".join(packed)[:-3])  # the stop cut short
    assert file_ending(path) is Ending.OPEN
    path.write_bytes(b"".join(packed[:2]))  # no stop yet
    assert file_ending(path) is Ending.OPEN
    path.write_bytes(b"".join([*packed, packed[1]]))  # a document after the stop: not the end of a run
    assert file_ending(path) is Ending.OPEN
