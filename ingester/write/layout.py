"""The rules of TiledWriter's layout that the writer follows, without importing bluesky-tiled-plugins.

Importing any part of bluesky-tiled-plugins runs its package `__init__`, which imports its
clients, xarray, dask and pandas (about 250 MB and a second); the writer needs none of that for a
run without external data. These are the same limits and the same two helpers as in
`bluesky_tiled_plugins.writing.tiled_writer` and `bluesky_tiled_plugins.utils` (tests/write/test_layout.py
checks them against the originals), plus the specs and the stream metadata TiledWriter gives its nodes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from tiled.structures.core import Spec

from ingester.runs import StreamInfo

__all__ = [
    "MAX_ARRAY_SIZE", "MAX_TABLE_COLUMNS", "RUN_SPEC", "STREAM_SPECS", "truncate_json_overflow", "split_table",
    "run_specs", "stream_metadata",
]  # fmt: skip

# Internal array values with more elements than this go to zarr array nodes, not to the table.
MAX_ARRAY_SIZE = 16
# An internal table with more columns than this is split into internal_0, internal_1, ...
MAX_TABLE_COLUMNS = 1024

RUN_SPEC = Spec("BlueskyRun", version="3.0")
STREAM_SPECS = [Spec("BlueskyEventStream", version="3.0"), Spec("composite")]

_JSON_INT_MIN, _JSON_INT_MAX = 1 - 2**53, 2**53 - 1  # integers JSON readers keep exactly
_FLOAT_LIMIT = 1.7976e308  # a little under the largest float, so that no value becomes infinite


def truncate_json_overflow(data: Any) -> Any:
    """`data` with whole numbers outside JSON's exact integer range and huge floats clipped.

    Mappings become dicts and other iterables (but strings) lists, recursively, as in TiledWriter.
    """
    if isinstance(data, Mapping):
        return {key: truncate_json_overflow(value) for key, value in data.items()}
    if isinstance(data, Iterable) and not isinstance(data, str):
        return [truncate_json_overflow(item) for item in data]
    if isinstance(data, (int, float)) and not data % 1 and not _JSON_INT_MIN <= data <= _JSON_INT_MAX:
        return min(max(data, _JSON_INT_MIN), _JSON_INT_MAX)
    if isinstance(data, float) and (data < -_FLOAT_LIMIT or data > _FLOAT_LIMIT):
        return min(max(data, -_FLOAT_LIMIT), _FLOAT_LIMIT)
    return data


def split_table(table: Any, max_columns: int) -> Iterator[Any]:
    """A pyarrow table as tables of at most `max_columns` columns, columns sorted by name, parts equal."""
    columns: list[str] = sorted(table.column_names)
    parts = math.ceil(len(columns) / max_columns)
    size = math.ceil(len(columns) / parts)
    for start in range(0, len(columns), size):
        yield table.select(columns[start : start + size])


def run_specs(extra_specs: list) -> list[Spec]:
    """The start document's `tiled_specs` first, then BlueskyRun 3.0, as TiledWriter orders them."""
    return [*(Spec(s) if isinstance(s, str) else Spec(**s) for s in extra_specs), RUN_SPEC]


def stream_metadata(info: StreamInfo) -> dict[str, Any]:
    """A stream container's metadata: its first descriptor minus name/object_keys/run_start, and
    `_config_updates` for the later descriptors of the stream, truncated as TiledWriter does."""
    metadata = {k: v for k, v in info.descriptor.items() if k not in {"name", "object_keys", "run_start"}}
    if info.config_updates:
        updates = []
        for update in info.config_updates:
            entry = {"uid": update["uid"], "time": update["time"]}
            if update.get("configuration"):
                entry["configuration"] = update["configuration"]
            updates.append(entry)
        metadata["_config_updates"] = updates
    return truncate_json_overflow(metadata)
