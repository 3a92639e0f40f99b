"""Limits a document must keep to be written into Tiled, checked when it is validated.

A document Tiled cannot store is refused at validation, saying why, instead of failing half-way
through the write: one nested deeper than `MAX_NESTING` levels (Tiled's request parser gives up
near 200, Python's own recursion limit below 1,000), and a data key longer than a table column name
may be (63 bytes in Tiled's SQL storage, `ts_` included). Quoted keys are shortened. The check of
an event's data follows the first element of each array only: it must cost little per event.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_NESTING", "MAX_DATA_KEY_BYTES", "limit_problem", "shorten"]

MAX_NESTING = 64
MAX_DATA_KEY_BYTES = 60  # Tiled's SQL columns take 63 bytes; the key's timestamps are `ts_<key>`
_EVENTS = frozenset({"event", "event_page"})


def limit_problem(name: str, doc: dict[str, Any]) -> str | None:
    """Why `doc` (a document named `name`, valid against its schema) cannot be stored, or None."""
    if name in _EVENTS:
        data = doc.get("data")
        if isinstance(data, dict):
            for key, value in data.items():
                if isinstance(value, list | dict) and _first_path_depth(value) > MAX_NESTING:
                    return f"the value of data key {shorten(key)} is nested more than {MAX_NESTING} levels deep"
        return None
    if _deeper_than(doc, MAX_NESTING):
        return f"nested more than {MAX_NESTING} levels deep"
    if name == "descriptor":
        for key in doc.get("data_keys") or {}:
            size = len(key.encode("utf-8", "surrogatepass"))
            if size > MAX_DATA_KEY_BYTES:
                return (
                    f"data key {shorten(key)} is {size} bytes long: Tiled's table columns take at most "
                    f"{MAX_DATA_KEY_BYTES} (63 with the timestamp's 'ts_')"
                )
    return None


def shorten(text: str, keep: int = 40) -> str:
    """`text` quoted, cut to `keep` characters with what was left out counted."""
    if len(text) <= keep:
        return repr(text)
    return f"{text[:keep]!r}… ({len(text)} characters)"


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` holds containers nested more than `limit` levels (it stops looking there)."""
    if limit < 0:
        return True
    if isinstance(value, dict):
        return any(isinstance(v, dict | list) and _deeper_than(v, limit - 1) for v in value.values())
    if isinstance(value, list):
        return any(isinstance(v, dict | list) and _deeper_than(v, limit - 1) for v in value)
    return False


def _first_path_depth(value: Any) -> int:
    """How deep the first element of each level goes: the shape of a nested array, cheaply."""
    depth = 0
    while depth <= MAX_NESTING:
        if isinstance(value, list) and value:
            value = value[0]
        elif isinstance(value, dict) and value:
            value = next(iter(value.values()))
        else:
            break
        depth += 1
    return depth
