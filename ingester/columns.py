"""Rows of a stream as columns: the value that carries a run's event data from the read stage to the writer.

A `ColumnBlock` holds consecutive rows of one stream, a list (or, for columns of nothing but floats
or ints, a numpy array) per key. A row that lacks a key another row of the block has holds `MISSING`
there. `first_row` keeps the keys of the block's first row in order: pyarrow's `Table.from_pylist`,
which TiledWriter uses, takes a table's columns from its first row only. `chunk_rows` is how many
rows the writer sends in one request, which the read stage sizes its blocks by.
"""

from __future__ import annotations

from typing import Any

import numpy

__all__ = ["MISSING", "ColumnBlock", "chunk_rows", "MAX_CHUNK_ROWS", "MAX_CHUNK_CELLS"]

MAX_CHUNK_ROWS = 50_000  # rows of one `append_partition` request
MAX_CHUNK_CELLS = 1_000_000  # rows x columns held at once, so wide streams get shorter chunks


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"  # unpickles as the module's singleton


MISSING: Any = _Missing()


def chunk_rows(width: int) -> int:
    """Rows a chunk holds when its first row has `width` keys (the writer's request size)."""
    return max(1, min(MAX_CHUNK_ROWS, MAX_CHUNK_CELLS // max(1, width)))


class ColumnBlock:
    """Consecutive rows of one stream as columns (a list, or a numpy array of numbers, per key)."""

    __slots__ = ("columns", "length", "first_row", "sparse")

    def __init__(self, columns: dict[str, Any], length: int, first_row: tuple[str, ...], sparse: set[str]):
        self.columns = columns  # key -> values, in the order keys were first seen
        self.length = length
        self.first_row = first_row  # the keys of the first row, in its order
        self.sparse = sparse  # keys whose column holds MISSING somewhere

    def present(self, key: str) -> list[Any]:
        """The values of the rows that have `key` (empty if none has)."""
        column = self.columns.get(key)
        if column is None:
            return []
        if isinstance(column, numpy.ndarray):
            return column.tolist()
        if key in self.sparse:
            return [value for value in column if value is not MISSING]
        return list(column)

    def nullable(self, key: str) -> Any:
        """The column with None where a row lacks `key`: a list, or the numpy array it is stored as."""
        column = self.columns.get(key)
        if column is None:
            return [None] * self.length
        if key in self.sparse:
            return [None if value is MISSING else value for value in column]
        return column

    def rows(self) -> list[dict[str, Any]]:
        """The rows as dicts (keys in column order); for tests and inspection."""
        names = list(self.columns)
        values = [self.columns[name] for name in names]
        values = [v.tolist() if isinstance(v, numpy.ndarray) else v for v in values]
        return [
            {name: value for name, value in zip(names, row, strict=True) if value is not MISSING}
            for row in zip(*values, strict=True)
        ]

    def slice(self, start: int, stop: int) -> ColumnBlock:
        stop = min(stop, self.length)
        first = self.first_row if start == 0 else tuple(k for k, c in self.columns.items() if c[start] is not MISSING)
        return ColumnBlock({k: c[start:stop] for k, c in self.columns.items()}, stop - start, first, set(self.sparse))

    def nbytes(self) -> int:
        """A rough size in memory: 8 bytes a number in an array, about 40 a Python object in a list."""
        return sum(c.nbytes if isinstance(c, numpy.ndarray) else 40 * len(c) for c in self.columns.values())

    @staticmethod
    def concat(blocks: list[ColumnBlock]) -> ColumnBlock:
        """One block of `blocks`' rows in order; a key some block lacks is MISSING in its rows."""
        if len(blocks) == 1:
            return blocks[0]
        names: dict[str, None] = {}
        for block in blocks:
            names.update(dict.fromkeys(block.columns))
        columns: dict[str, Any] = {}
        sparse: set[str] = set()
        for name in names:
            parts = [block.columns.get(name) for block in blocks]
            if all(isinstance(p, numpy.ndarray) for p in parts) and len({p.dtype for p in parts}) == 1:
                columns[name] = numpy.concatenate(parts)
                continue
            merged: list[Any] = []
            for block, part in zip(blocks, parts, strict=True):
                if part is None:
                    merged.extend([MISSING] * block.length)
                    sparse.add(name)
                else:
                    merged.extend(part.tolist() if isinstance(part, numpy.ndarray) else part)
                    if name in block.sparse:
                        sparse.add(name)
            columns[name] = merged
        return ColumnBlock(columns, sum(b.length for b in blocks), blocks[0].first_row, sparse)
