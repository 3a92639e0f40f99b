"""Tail check: whether a run file ends with a complete `stop` document, from its last bytes only.

This is how the watcher tells a finished run file from one still being written, cheaply and
without the read stage: only the last `TAIL_BYTES` of the file are read. A line-oriented file
(suitcase-jsonl, JSONL backup) ends with a stop document when its last line is newline-terminated
and parses as `["stop", {...}]` or `{"name": "stop", "doc": {...}}`; a JSON array file when the
last element before its closing `]` does. `NaN` and `Infinity` are accepted the way Python's json
module writes them. A gzip file (told by its magic bytes) cannot be tailed without reading it
whole, so it is reported as such and judged by quietness alone. A msgpack file (suitcase-msgpack,
told by its first byte) ends with a stop document when the last `["stop", {...}]` pair found in its
tail unpacks to exactly the rest of the file.

A stop document is small: one that does not fit in the tail is not seen, and the file looks open.
This module never validates documents, never reads a file whole and never modifies it.
"""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Any

import msgpack

from ingester.read.jsonio import is_gzip, loads_lenient
from ingester.read.msgpackio import is_msgpack

__all__ = ["TAIL_BYTES", "Ending", "file_ending", "ending_of", "is_stop_document"]

TAIL_BYTES = 64 * 1024
_WHITESPACE = b" \t\r\n"
_MSGPACK_STOP = b"\x92\xa4stop"  # a two-element array whose first element is the 4-byte string "stop"


class Ending(StrEnum):
    """How a run file ends."""

    STOP = "stop"
    """Its last document is a complete stop document."""
    OPEN = "open"
    """Half a line, no stop document yet, or unreadable: still being written, as far as we can tell."""
    COMPRESSED = "compressed"
    """Gzip-compressed: its end cannot be read cheaply."""


def file_ending(path: str | os.PathLike[str], *, tail_bytes: int = TAIL_BYTES) -> Ending:
    """How the file at `path` ends, reading its first two bytes and its last `tail_bytes`."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            if is_gzip(head):
                return Ending.COMPRESSED
            start = max(0, fh.seek(0, os.SEEK_END) - tail_bytes)
            fh.seek(start)
            tail = fh.read(tail_bytes)
    except OSError:
        return Ending.OPEN  # gone or unreadable: whoever stats it next finds out which
    if is_msgpack(head):
        return Ending.STOP if _msgpack_ends_with_stop(tail) else Ending.OPEN
    return ending_of(tail, whole=start == 0)


def _msgpack_ends_with_stop(tail: bytes) -> bool:
    """Whether the last stop pair in `tail` is whole and nothing follows it."""
    at = tail.rfind(_MSGPACK_STOP)
    while at >= 0:
        try:
            item = msgpack.unpackb(tail[at:], raw=False, strict_map_key=False)
        except (ValueError, TypeError):  # cut short, followed by more documents, or not msgpack here
            item = None
        if is_stop_document(item):
            return True
        at = tail.rfind(_MSGPACK_STOP, 0, at)
    return False


def ending_of(tail: bytes, *, whole: bool = False) -> Ending:
    """How a file ends whose last bytes are `tail` (`whole`: the tail is the entire file)."""
    if _last_line_is_stop(tail, whole) or _last_element_is_stop(tail):
        return Ending.STOP
    return Ending.OPEN


def is_stop_document(item: Any) -> bool:
    """Whether a parsed line or array element is a stop document, in either of the two shapes."""
    if isinstance(item, list):
        return len(item) == 2 and item[0] == "stop" and isinstance(item[1], dict)
    if isinstance(item, dict):
        return item.get("name") == "stop" and isinstance(item.get("doc"), dict)
    return False


def _last_line_is_stop(tail: bytes, whole: bool) -> bool:
    body = tail.rstrip(_WHITESPACE)
    if not body or b"\n" not in tail[len(body) :]:
        return False  # empty, or the last line has no newline yet: half-written
    start = body.rfind(b"\n") + 1
    if start == 0 and not whole:
        return False  # the line began before the tail: too long to be a stop document
    return is_stop_document(loads_lenient(body[start:]))


def _last_element_is_stop(tail: bytes) -> bool:
    body = tail.rstrip(_WHITESPACE)
    if not body.endswith(b"]"):
        return False
    inner = body[:-1].rstrip(_WHITESPACE)
    start = _opening_of_last_value(inner)
    if start is None or not inner[:start].rstrip(_WHITESPACE).endswith((b",", b"[")):
        return False
    return is_stop_document(loads_lenient(inner[start:]))


def _opening_of_last_value(text: bytes) -> int | None:
    """Where the object or array that `text` ends with begins (brackets in strings skipped)."""
    if not text.endswith((b"}", b"]")):
        return None
    depth = 0
    i = len(text) - 1
    while i >= 0:
        char = text[i]
        if char == 0x22:  # '"': walk back to the quote that opens this string
            i -= 1
            while i >= 0 and not (text[i] == 0x22 and _unescaped(text, i)):
                i -= 1
        elif char in b"}]":
            depth += 1
        elif char in b"{[":
            depth -= 1
            if depth == 0:
                return i
        i -= 1
    return None  # began before the tail


def _unescaped(text: bytes, quote: int) -> bool:
    backslashes = 0
    i = quote - 1
    while i >= 0 and text[i] == 0x5C:
        backslashes += 1
        i -= 1
    return backslashes % 2 == 0
