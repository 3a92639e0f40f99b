"""Hand-derived variants of good runs: bad input, incomplete files, unsafe and moved external paths.

Each function takes the documents of a good run (already given fresh uids by the caller) and returns
the lines of the variant plus where the first problem is (1-based line, or None). Every bad file
holds exactly one fault; everything else is left as the RunEngine wrote it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from fixture_io import Docs, pair_line

__all__ = [
    "Variant",
    "BAD_VARIANTS",
    "truncated_tail",
    "without_stop",
    "point_stream_resources",
    "point_resources",
]


@dataclass
class Variant:
    """The lines of a derived file and the expected outcome of reading it."""

    lines: list[str | bytes]
    line: int | None
    reason: str
    runs: int = 1
    final_newline: bool = True
    note: str = ""


def _index(docs: Docs, name: str, nth: int = 0) -> int:
    """Position of the nth document called `name`."""
    return [i for i, (n, _) in enumerate(docs) if n == name][nth]


def _lines(docs: Docs) -> list[str | bytes]:
    return [pair_line(name, doc) for name, doc in docs]


def _edit(docs: Docs, position: int, change) -> Docs:
    docs = copy.deepcopy(docs)
    change(docs[position][1])
    return docs


def empty(_: Docs, __: Docs) -> Variant:
    return Variant([], 1, "empty", runs=0, final_newline=False, note="0 bytes")


def not_utf8(docs: Docs, _: Docs) -> Variant:
    i = _index(docs, "event", 1)
    lines = _lines(docs)
    # Latin-1 / stray bytes inside a JSON string (here the uid), the way mis-encoded text arrives.
    lines[i] = lines[i].encode().replace(b'"uid": "', b'"uid": "\xe9\xff', 1)
    return Variant(lines, i + 1, "not utf-8")


def malformed_json(docs: Docs, _: Docs) -> Variant:
    i = _index(docs, "event", 1)
    lines = _lines(docs)
    lines[i] = lines[i].replace(", ", " ", 1)  # a missing comma between two members
    return Variant(lines, i + 1, "malformed json")


def unknown_document_name(docs: Docs, _: Docs) -> Variant:
    i = _index(docs, "event", 1)
    lines = _lines(docs)
    lines[i] = pair_line("evnet", docs[i][1])
    return Variant(lines, i + 1, "unknown document name")


def schema_dtype(docs: Docs, _: Docs) -> Variant:
    i = _index(docs, "descriptor")
    bad = _edit(docs, i, lambda d: d["data_keys"]["det"].update(dtype="float64"))
    return Variant(_lines(bad), i + 1, "fails its schema", note="descriptor data_keys.det.dtype is 'float64'")


def schema_no_seq_num(docs: Docs, _: Docs) -> Variant:
    i = _index(docs, "event", 1)
    bad = _edit(docs, i, lambda d: d.pop("seq_num"))
    return Variant(_lines(bad), i + 1, "fails its schema", note="the second event has no seq_num")


def unknown_descriptor(docs: Docs, _: Docs) -> Variant:
    i = _index(docs, "event", 1)
    bad = _edit(docs, i, lambda d: d.update(descriptor="00000000-0000-4000-8000-00000000dead"))
    return Variant(_lines(bad), i + 1, "unknown descriptor")


def second_start(docs: Docs, other: Docs) -> Variant:
    """Decision: a second start (another uid) before the first run's stop; runs may not interleave.

    The same uid starting twice is covered by `duplicate_uid`-style checks, not here.
    """
    cut = _index(docs, "event", 1)
    merged = docs[:cut] + other + docs[cut:]
    return Variant(
        _lines(merged),
        cut + 1,
        "second start",
        runs=2,
        note="run B's start comes before run A's stop (interleaved runs are refused)",
    )


def stop_for_another_run(docs: Docs, other: Docs) -> Variant:
    i = _index(docs, "stop")
    bad = _edit(docs, i, lambda d: d.update(run_start=other[0][1]["uid"]))
    return Variant(
        _lines(bad),
        i + 1,
        "stop is for another run",
        note="stop.run_start is the uid of another run (not in this file)",
    )


def data_keys_mismatch(docs: Docs, _: Docs) -> Variant:
    i = _index(docs, "event", 1)

    def change(doc):
        doc["data"]["bogus"] = doc["data"].pop("noisy_det")
        doc["timestamps"]["bogus"] = doc["timestamps"].pop("noisy_det")

    return Variant(
        _lines(_edit(docs, i, change)), i + 1, "data keys", note="the second event has 'bogus' instead of 'noisy_det'"
    )


def seq_num_not_increasing(docs: Docs, _: Docs) -> Variant:
    i = _index(docs, "event", 2)
    bad = _edit(docs, i, lambda d: d.update(seq_num=2))
    return Variant(_lines(bad), i + 1, "seq_num", note="seq_num 1, 2, 2")


def duplicate_uid(docs: Docs, _: Docs) -> Variant:
    i = _index(docs, "event", 2)
    twin = docs[_index(docs, "event", 1)][1]["uid"]
    bad = _edit(docs, i, lambda d: d.update(uid=twin))
    return Variant(_lines(bad), i + 1, "duplicate uid", note="the third event reuses the second's uid")


BAD_VARIANTS = {
    # file name: (derive, what it is)
    "empty.jsonl": (empty, "empty file, 0 bytes"),
    "not_utf8.jsonl": (not_utf8, "bytes 0xE9 0xFF inside a string on a middle line"),
    "malformed_json.jsonl": (malformed_json, "a middle line with a missing comma"),
    "unknown_document_name.jsonl": (unknown_document_name, "document named 'evnet'"),
    "schema_descriptor_dtype.jsonl": (schema_dtype, "descriptor data key with dtype 'float64'"),
    "schema_event_no_seq_num.jsonl": (schema_no_seq_num, "event without seq_num"),
    "unknown_descriptor.jsonl": (unknown_descriptor, "event whose descriptor uid is unknown"),
    "second_start_before_stop.jsonl": (second_start, "a second run starts before the first stops"),
    "stop_for_another_run.jsonl": (stop_for_another_run, "stop whose run_start is another run"),
    "data_keys_mismatch.jsonl": (data_keys_mismatch, "event data keys differ from the descriptor"),
    "seq_num_not_increasing.jsonl": (seq_num_not_increasing, "seq_num 1, 2, 2"),
    "duplicate_uid.jsonl": (duplicate_uid, "two events with the same uid"),
}


def unknown_resource(docs: Docs) -> Variant:
    i = _index(docs, "datum")
    bad = _edit(docs, i, lambda d: d.update(resource="00000000-0000-4000-8000-0000000beef0"))
    return Variant(_lines(bad), i + 1, "unknown resource", note="the first datum names a resource not in the file")


def unknown_datum(docs: Docs, key: str) -> Variant:
    """A legacy external key whose Resource and Datums are gone: the event holds a dangling datum id."""
    kept = [(n, d) for n, d in docs if n not in ("resource", "datum")]
    i = _index(kept, "event")
    return Variant(
        _lines(kept),
        i + 1,
        "unknown datum",
        note=f"'{key}' is external (FILESTORE) but no resource/datum documents are present",
    )


def unknown_stream_resource(docs: Docs) -> Variant:
    i = _index(docs, "stream_datum")
    bad = _edit(docs, i, lambda d: d.update(stream_resource="00000000-0000-4000-8000-0000000cafe0"))
    return Variant(_lines(bad), i + 1, "unknown stream_resource")


def missing_stream_resource(docs: Docs, key: str) -> Variant:
    """An external STREAM: key with neither its StreamResource nor its StreamDatums."""
    sres = {d["uid"] for n, d in docs if n == "stream_resource" and d["data_key"] == key}
    kept = [
        (n, d)
        for n, d in docs
        if not (n == "stream_resource" and d["uid"] in sres)
        and not (n == "stream_datum" and d["stream_resource"] in sres)
    ]
    i = _index(kept, "descriptor")
    return Variant(
        _lines(kept),
        i + 1,
        "has no stream_resource",
        note=f"'{key}' is external (STREAM:) but has no stream_resource; reported at its descriptor",
    )


def without_stop(docs: Docs) -> Variant:
    return Variant(_lines([p for p in docs if p[0] != "stop"]), None, "no stop")


def truncated_tail(docs: Docs) -> Variant:
    lines = _lines(docs)
    lines[-1] = lines[-1][: len(lines[-1]) // 2]
    return Variant(
        lines,
        len(lines),
        "truncated",
        final_newline=False,
        note="the stop line is cut in the middle, no trailing newline",
    )


def point_stream_resources(docs: Docs, uri: str) -> Docs:
    """Point every StreamResource (and the descriptor `source` ophyd-async mirrors) at `uri`."""
    docs = copy.deepcopy(docs)
    old = {d["uri"] for n, d in docs if n == "stream_resource"}
    for name, doc in docs:
        if name == "stream_resource":
            doc["uri"] = uri
        elif name == "descriptor":
            for key in doc["data_keys"].values():
                if key["source"] in old:
                    key["source"] = uri
    return docs


def point_resources(docs: Docs, root: str, resource_path: str) -> Docs:
    """Give every legacy Resource a new `root` and `resource_path`."""
    docs = copy.deepcopy(docs)
    for name, doc in docs:
        if name == "resource":
            doc.update(root=root, resource_path=resource_path)
    return docs
