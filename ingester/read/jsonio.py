"""The two byte-level facts every reader of a run file needs: is it gzip, and what does a line parse to.

`loads_lenient` parses one JSON value with orjson, falling back to Python's json module for `NaN`,
`Infinity` and `-Infinity` (which Python's json writes and orjson refuses); None when neither can.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["GZIP_MAGIC", "is_gzip", "loads_lenient"]

GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(head: bytes) -> bool:
    """Whether a file starting with `head` (its first two bytes or more) is gzip-compressed."""
    return head[:2] == GZIP_MAGIC


def loads_lenient(raw: bytes) -> Any:
    """The JSON value in `raw` (NaN/Infinity accepted), or None when it is not one."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None
