"""Fixture plumbing: pin uids and clocks, capture documents, relocate paths, write every file format.

Used only by `make_fixtures.py`. Nothing here knows which fixtures exist; it never decides what a
fixture means (that is `make_fixtures.py`'s expected.json), it only makes documents reproducible and
puts them on disk in the exact byte forms the real writers (suitcase-jsonl, bluesky's JSONWriter and
JSONLinesWriter) produce.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import random
import re
import shutil
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import event_model
import suitcase.jsonl
from bluesky.callbacks.json_writer import JSONLinesWriter, JSONWriter

__all__ = [
    "Docs",
    "pinned",
    "capture",
    "fresh_uids",
    "relocate",
    "pair_line",
    "write_suitcase_jsonl",
    "write_gzip_jsonl",
    "write_name_doc_lines",
    "write_json_array",
    "write_pretty_pairs",
    "write_lines",
]

Docs = list[tuple[str, dict[str, Any]]]

# 2025-01-01T00:00:00Z; every fixture's fake clock starts at a fixed offset from here.
BASE_TIME = 1_735_689_600.0
CLOCK_STEP = 0.01
UID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@contextlib.contextmanager
def pinned(seed: str) -> Iterator[None]:
    """Make uuid4 and time.time reproducible while a fixture is produced.

    Every uid the RunEngine, ophyd and event-model mint goes through `uuid.uuid4`, and every
    document time and reading timestamp through `time.time`; both are looked up on the module at
    call time, so patching the module attributes is enough. The clock advances a fixed step per
    call (pacing in ophyd-async and asyncio uses `time.monotonic`, which is left alone).
    """
    rng = random.Random(seed)
    now = BASE_TIME + zlib.crc32(seed.encode()) % 1_000_000
    lock = threading.Lock()

    def fake_uuid4() -> uuid.UUID:
        with lock:
            return uuid.UUID(int=rng.getrandbits(128), version=4)

    def fake_time() -> float:
        nonlocal now
        with lock:
            now = round(now + CLOCK_STEP, 6)
            return now

    real_uuid4, real_time = uuid.uuid4, time.time
    uuid.uuid4, time.time = fake_uuid4, fake_time
    try:
        yield
    finally:
        uuid.uuid4, time.time = real_uuid4, real_time


def capture(run_engine, plan) -> Docs:
    """Run `plan` and return its documents as they look once serialized (numpy -> lists)."""
    docs: Docs = []
    token = run_engine.subscribe(lambda name, doc: docs.append((name, doc)))
    try:
        run_engine(plan)
    finally:
        run_engine.unsubscribe(token)
    # A JSON round trip copies the documents and turns numpy values into what every file holds.
    return [tuple(pair) for pair in json.loads(json.dumps(docs, cls=event_model.NumpyEncoder))]


def _map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [_map_strings(item, fn) for item in value]
    if isinstance(value, dict):
        return {key: _map_strings(item, fn) for key, item in value.items()}
    return value


def fresh_uids(docs: Docs, seed: str) -> Docs:
    """Give a derived run its own uids, consistently (datum ids like `<resource uid>/0` included)."""
    rng = random.Random(seed)
    mapping: dict[str, str] = {}

    def swap(match: re.Match) -> str:
        old = match.group(0)
        if old not in mapping:
            mapping[old] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        return mapping[old]

    return [(name, _map_strings(doc, lambda s: UID_PATTERN.sub(swap, s))) for name, doc in docs]


def relocate(docs: Docs, written_in: Path, stream_prefix: str, resource_root: str) -> Docs:
    """Point external references at a location independent of this machine.

    `written_in` is the absolute folder the devices wrote into. A StreamResource `uri` (and the
    descriptor `source` ophyd-async fills with the same URI) becomes `stream_prefix + file name`;
    a legacy Resource gets `root = resource_root` and `resource_path = "data/<stem>"`.
    """
    written = str(written_in.resolve())
    prefixes = (f"file://localhost{written}/", f"file://{written}/", f"{written}/")

    def rewrite(text: str) -> str:
        for prefix in prefixes:
            if text.startswith(prefix):
                return stream_prefix + text[len(prefix) :]
        return text

    out: Docs = []
    for name, doc in docs:
        doc = json.loads(json.dumps(doc))
        if name == "stream_resource":
            doc["uri"] = rewrite(doc["uri"])
        elif name == "descriptor":
            for key in doc["data_keys"].values():
                key["source"] = rewrite(key["source"])
        elif name == "resource" and doc["root"].rstrip("/") == written:
            doc["root"] = resource_root
            doc["resource_path"] = "data/" + doc["resource_path"].lstrip("/")
        out.append((name, doc))
    leftover = [n for n, d in out if written in json.dumps(d)]
    if leftover:
        raise RuntimeError(f"absolute path {written} still in {leftover}")
    return out


def pair_line(name: str, doc: dict[str, Any]) -> str:
    """One suitcase-jsonl line without its newline, byte-identical to suitcase.jsonl's."""
    return json.dumps((name, doc), cls=event_model.NumpyEncoder)


def write_suitcase_jsonl(path: Path, docs: Docs) -> None:
    """Write one run with suitcase.jsonl's own Serializer (`[name, doc]` per line)."""
    with tempfile.TemporaryDirectory() as tmp:
        with suitcase.jsonl.Serializer(tmp, file_prefix="run") as serializer:
            for name, doc in docs:
                serializer(name, doc)
        shutil.copyfile(Path(tmp) / "run.jsonl", path)


def write_gzip_jsonl(path: Path, docs: Docs) -> None:
    """suitcase-jsonl bytes, gzip-compressed with a fixed mtime and no embedded name (reproducible)."""
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "run.jsonl"
        write_suitcase_jsonl(plain, docs)
        with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as packed:
            packed.write(plain.read_bytes())
    path.write_bytes(buffer.getvalue())


def write_name_doc_lines(path: Path, docs: Docs) -> None:
    """`{"name": ..., "doc": ...}` per line, with bluesky's JSONLinesWriter (TiledWriter's backup form)."""
    writer = JSONLinesWriter(str(path.parent), path.name)
    for name, doc in docs:
        writer(name, doc)


def write_json_array(path: Path, docs: Docs) -> None:
    """A JSON array of `{"name", "doc"}`, one element a line, with bluesky's JSONWriter."""
    writer = JSONWriter(str(path.parent), path.name)
    for name, doc in docs:
        writer(name, doc)


def write_pretty_pairs(path: Path, docs: Docs) -> None:
    """A pretty-printed (indent=2) JSON array of `[name, doc]` pairs."""
    path.write_text(json.dumps([[n, d] for n, d in docs], indent=2) + "\n")


def write_lines(path: Path, lines: list[str | bytes], *, final_newline: bool = True) -> None:
    """Write hand-derived lines (str or raw bytes) joined by newlines."""
    raw = [line.encode() if isinstance(line, str) else line for line in lines]
    data = b"\n".join(raw) + (b"\n" if final_newline and raw else b"")
    path.write_bytes(data)
