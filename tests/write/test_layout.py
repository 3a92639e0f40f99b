"""ingester.write.layout: TiledWriter's limits and helpers, as bluesky-tiled-plugins defines them.

The writer keeps its own copies so that a run without external data never imports
bluesky-tiled-plugins (its package import pulls in xarray, dask and pandas); these tests hold the
copies to the originals.
"""

from __future__ import annotations

import pyarrow
import pytest
from bluesky_tiled_plugins.utils import split_table as their_split
from bluesky_tiled_plugins.utils import truncate_json_overflow as their_truncate
from bluesky_tiled_plugins.writing import tiled_writer

from ingester.write.layout import MAX_ARRAY_SIZE, MAX_TABLE_COLUMNS, split_table, truncate_json_overflow


def test_limits_are_tiled_writers():
    assert MAX_ARRAY_SIZE == tiled_writer.MAX_ARRAY_SIZE
    assert MAX_TABLE_COLUMNS == tiled_writer.MAX_TABLE_COLUMNS


@pytest.mark.parametrize(
    "value",
    [
        {"a": 2**60, "b": [-(2**60), 1.5, "x"], "c": {"d": 1e308 * 10}},
        [1, 2.0, 2**53, 2**53 + 1, -(2**53) - 1, 1.7977e308, -1.7977e308],
        {"nested": [[{"deep": 9_007_199_254_740_993}]]},
        (1, 2, 3),
        "text",
        3.25,
    ],
)
def test_truncate_json_overflow_is_tiled_writers(value):
    assert truncate_json_overflow(value) == their_truncate(value)


@pytest.mark.parametrize("columns", [3, MAX_TABLE_COLUMNS, MAX_TABLE_COLUMNS + 1, 2 * MAX_TABLE_COLUMNS + 5])
def test_split_table_is_tiled_writers(columns):
    table = pyarrow.table({f"c{i:05d}" if i % 2 else f"b{i}": [i] for i in range(columns)})
    ours = [part.column_names for part in split_table(table, MAX_TABLE_COLUMNS)]
    assert ours == [part.column_names for part in their_split(table, MAX_TABLE_COLUMNS)]
    assert all(len(names) <= MAX_TABLE_COLUMNS for names in ours)
    assert sorted(name for names in ours for name in names) == sorted(table.column_names)
