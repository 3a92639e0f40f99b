"""ingester.read.rows, ingester.read.spool and the Arrow tables ingester.write.tables builds from their blocks.

The tables must be exactly what pyarrow's `Table.from_pylist` (what TiledWriter uses) makes of the
same rows; the spool must give back what it was given, in order, from memory or from its file.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy
import pyarrow
import pytest
from bluesky_tiled_plugins.utils import split_table as their_split_table
from bluesky_tiled_plugins.utils import truncate_json_overflow as their_truncate
from bluesky_tiled_plugins.writing.tiled_writer import MAX_ARRAY_SIZE, MAX_TABLE_COLUMNS

from ingester.columns import MISSING, ColumnBlock
from ingester.read.rows import blocks_from_rows
from ingester.read.single_pass import read_once
from ingester.read.spool import RowSpool
from ingester.write.layout import MAX_ARRAY_SIZE as OUR_MAX_ARRAY_SIZE
from ingester.write.layout import MAX_TABLE_COLUMNS as OUR_MAX_TABLE_COLUMNS
from ingester.write.layout import split_table, truncate_json_overflow
from ingester.write.tables import arrow_table, nulls_as_strings
from support.corpus import FIXTURES

ROWS = {
    "floats": [{"seq_num": i, "time": 1.5 * i, "x": i / 3, "ts_x": 2.0 * i} for i in range(1, 6)],
    "a key only in later rows is not a column": [
        {"seq_num": 1, "time": 1.0, "a": 1.0},
        {"seq_num": 2, "time": 2.0, "a": 2.0, "late": "x"},
    ],
    "a key missing in later rows is null": [
        {"seq_num": 1, "time": 1.0, "a": 1, "b": "s"},
        {"seq_num": 2, "time": 2.0, "a": 2},
        {"seq_num": 3, "time": 3.0, "b": "t"},
    ],
    "ints then floats": [{"seq_num": 1, "time": 1.0, "v": 1}, {"seq_num": 2, "time": 2.0, "v": 2.5}],
    "nan, inf, None, bools, lists": [
        {"seq_num": 1, "time": 1.0, "f": math.nan, "g": None, "b": True, "l": [1.0, 2.0]},
        {"seq_num": 2, "time": 2.0, "f": math.inf, "g": None, "b": False, "l": [3.0]},
    ],
    "other key order in later rows": [
        {"seq_num": 1, "time": 1.0, "a": 1.0, "b": 2.0},
        {"seq_num": 2, "time": 2.0, "b": 4.0, "a": 3.0},
    ],
}


def _block(rows: list[dict]) -> ColumnBlock:
    (block,) = blocks_from_rows(rows, len(rows))
    return block


@pytest.mark.parametrize("case", list(ROWS))
def test_tables_are_what_from_pylist_makes(case: str) -> None:
    rows = ROWS[case]
    block = _block(rows)
    assert block.length == len(rows)
    _assert_same_table(arrow_table(block), pyarrow.Table.from_pylist(rows))
    # Later chunks are converted to the first chunk's schema, as from_pylist(rows, schema) does.
    schema = nulls_as_strings(pyarrow.Table.from_pylist(rows).schema)
    _assert_same_table(arrow_table(_block(rows), schema), pyarrow.Table.from_pylist(rows, schema=schema))


def _assert_same_table(table: pyarrow.Table, expected: pyarrow.Table) -> None:
    assert table.schema == expected.schema
    assert str(table.to_pylist()) == str(expected.to_pylist())  # str: NaN equals NaN


def test_numbers_are_stored_compactly_and_come_back_exactly() -> None:
    rows = [{"seq_num": i, "time": i * 0.1, "big": 2**62 + i, "huge": 2**70 + i} for i in range(1, 4)]
    block = _block(rows)
    assert isinstance(block.columns["time"], numpy.ndarray) and isinstance(block.columns["big"], numpy.ndarray)
    assert isinstance(block.columns["huge"], list)  # does not fit int64: left to pyarrow, as before
    assert block.rows() == rows
    with pytest.raises(OverflowError):
        pyarrow.Table.from_pylist(rows)
    with pytest.raises(OverflowError):
        arrow_table(block)
    # A compact column converted to another type goes through the Python values, as with rows.
    ints = [{"seq_num": i, "time": float(i), "v": 10 * i} for i in range(1, 4)]
    schema = pyarrow.schema([("seq_num", pyarrow.float64()), ("time", pyarrow.int64()), ("v", pyarrow.float64())])
    _assert_same_table(arrow_table(_block(ints), schema), pyarrow.Table.from_pylist(ints, schema=schema))


def test_concat_and_slice_keep_rows_and_first_row() -> None:
    first = _block([{"seq_num": 1, "time": 1.0, "a": 1.0}])
    second = _block([{"seq_num": 2, "time": 2.0, "b": "x"}, {"seq_num": 3, "time": 3.0, "a": 3.0}])
    merged = ColumnBlock.concat([first, second])
    assert merged.first_row == ("seq_num", "time", "a")
    assert merged.rows() == [
        {"seq_num": 1, "time": 1.0, "a": 1.0},
        {"seq_num": 2, "time": 2.0, "b": "x"},
        {"seq_num": 3, "time": 3.0, "a": 3.0},
    ]
    assert merged.columns["a"][1] is MISSING and merged.present("a") == [1.0, 3.0]
    assert merged.slice(1, 3).rows() == merged.rows()[1:]
    assert merged.slice(0, 2).first_row == merged.first_row


def test_spool_keeps_order_and_spills_beyond_its_bound(tmp_path: Path) -> None:
    blocks = [_block([{"seq_num": i, "time": float(i), "x": [i] * 3}]) for i in range(1, 7)]
    with RowSpool(memory_bytes=2 * blocks[0].nbytes(), directory=str(tmp_path)) as spool:
        for i, block in enumerate(blocks):
            spool.add("run", "primary" if i % 2 else "baseline", block)
        spool.add("other", "primary", _block([{"seq_num": 9, "time": 9.0}]))
        assert spool.spilled == 5 and spool.in_memory == 2 * blocks[0].nbytes()
        got = list(spool.blocks("run"))
        assert [stream for stream, _ in got] == ["baseline", "primary"] * 3
        assert [block.rows() for _, block in got] == [block.rows() for block in blocks]
        assert spool.in_memory == 0  # handed out: the spool no longer holds them
        spool.discard("other")
        assert list(spool.blocks("other")) == []
    assert list(tmp_path.iterdir()) == []  # the temporary file is anonymous and gone


def test_one_pass_spills_a_large_run_and_gives_every_row_back(tmp_path: Path) -> None:
    path = FIXTURES / "good" / "count_event_page.jsonl"
    with RowSpool(memory_bytes=0, directory=str(tmp_path)) as spool:
        found = read_once(path, spool)
        (uid,) = found.normalized
        rows = {}
        for stream, block in spool.blocks(uid):
            rows[stream] = rows.get(stream, 0) + block.length
        assert spool.spilled > 0
    (report,) = found.report.runs
    assert rows == {name: count for name, count in report.streams.items() if count}
    assert {name: info.row_count for name, info in found.normalized[uid].streams.items()} == report.streams


def test_layout_rules_match_tiled_writer() -> None:
    assert (OUR_MAX_ARRAY_SIZE, OUR_MAX_TABLE_COLUMNS) == (MAX_ARRAY_SIZE, MAX_TABLE_COLUMNS)
    values = [
        2**53,
        2**53 - 1,
        -(2**53),
        2**60,
        -(2**60),
        1e300,
        -1e300,
        1.5e300,
        math.inf,
        -math.inf,
        math.nan,
        True,
        3,
        2.5,
        "text",
        None,
        (1, 2**60),
        {"a": [2**61, {"b": 1e309}]},
        numpy.array([2**60, 1]),
    ]
    for value in values:
        assert str(truncate_json_overflow(value)) == str(their_truncate(value)), value
    table = pyarrow.table({f"c{i:04d}": [i] for i in range(2500)})
    ours = [part.column_names for part in split_table(table, 1024)]
    assert ours == [part.column_names for part in their_split_table(table, 1024)]
