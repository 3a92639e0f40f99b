"""Write one run's internal (event) data: the `internal` table of each stream, and its array nodes.

Rows arrive as `(stream name, ColumnBlock)`: blocks of rows as columns (rows.py), each row
exactly as TiledWriter builds it. They are gathered per stream into bounded chunks (memory holds at
most one chunk per stream) and each chunk becomes one `append_partition` request, its Arrow table
built from the columns with pyarrow's `Table.from_arrays`, which is what the `Table.from_pylist`
TiledWriter uses does with rows. The layout is TiledWriter's: an appendable SQL table named
`internal` with the columns of the first row and the types of the first chunk (null columns typed
as strings), split into `internal_0`, `internal_1`, ... past 1024 columns; internal arrays with
more than 16 elements (or of strings) go to zarr array nodes, variable-length ones to ragged nodes,
in both cases extended chunk by chunk.

Beyond TiledWriter: Tiled's SQL storage refuses a table two of whose column names are equal ignoring
case (an APS scaler channel `Time` beside the event `time`, keys `I0` and `i0`, `TS_det` beside
`ts_det`), which TiledWriter fails on. The first of such columns, in the row's order (`seq_num`,
`time`, the data keys, their timestamps), stays in the table; each later one is written as a
one-dimensional array node of the stream under its own name, beside `internal`, extended chunk by
chunk like the other array nodes, and a note says so.

This module never reads run files, never creates run or stream containers and never deletes
anything: a failure propagates to the writer, which removes the whole run.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from typing import Any

import numpy
import pyarrow

from ingester.columns import ColumnBlock, chunk_rows
from ingester.write.layout import MAX_ARRAY_SIZE, MAX_TABLE_COLUMNS, split_table, truncate_json_overflow

__all__ = ["StreamTableWriter", "write_internal_data", "arrow_table", "nulls_as_strings", "check_storable"]

# The Arrow type pyarrow gives a list of Python numbers, for each numpy dtype rows.py stores them in.
_NATIVE_TYPES = {numpy.dtype(numpy.float64): pyarrow.float64(), numpy.dtype(numpy.int64): pyarrow.int64()}


def write_internal_data(
    writers: dict[str, StreamTableWriter], blocks: Iterable[tuple[str, ColumnBlock]]
) -> dict[str, int]:
    """Feed every block to its stream's writer, then flush them all; returns rows written per stream."""
    for stream, block in blocks:
        try:
            writer = writers[stream]
        except KeyError:
            raise ValueError(f"rows for stream {stream!r}, which has no descriptor") from None
        writer.add(block)
    for writer in writers.values():
        writer.finish()
    return {name: writer.rows_written for name, writer in writers.items()}


class StreamTableWriter:
    """The internal data of one stream, written into its (already created) stream container."""

    def __init__(
        self, stream_node: Any, stream: str, data_keys: dict[str, dict], *, access_tags: list | None, notes: list[str]
    ):
        self.node = stream_node
        self.stream = stream
        self.data_keys = data_keys
        self.access_tags = access_tags
        self.notes = notes  # shared with the writer: TiledWriter's notes end up in the run metadata
        self.rows_written = 0
        self._pending: list[ColumnBlock] = []
        self._pending_rows = 0
        self._chunk_rows = chunk_rows(0)
        self._schema: pyarrow.Schema | None = None
        self._tables: list[tuple[list[str], Any]] = []  # (columns, table client) per table node
        self._arrays: dict[str, tuple[Any, int]] = {}  # key -> (array client, rows so far)
        self._dim_names: dict[int, str] = {}
        self.array_keys, self.ragged_keys = _array_keys(data_keys)
        self.column_nodes: dict[str, str] = {}  # column -> the table column it collides with, ignoring case

    def add(self, block: ColumnBlock) -> None:
        if not block.length:
            return
        if not self._pending and not self._tables:
            self._chunk_rows = chunk_rows(len(block.first_row))
        if not self._pending and block.length >= self._chunk_rows:
            if block.length == self._chunk_rows:
                self._write_chunk(block)
                return
            for start in range(0, block.length, self._chunk_rows):
                self._write_chunk(block.slice(start, start + self._chunk_rows))
            return
        self._pending.append(block)
        self._pending_rows += block.length
        if self._pending_rows >= self._chunk_rows:
            self.add(self._take_pending())

    def finish(self) -> None:
        if self._pending:
            self._write_chunk(self._take_pending())

    def _take_pending(self) -> ColumnBlock:
        pending, self._pending, self._pending_rows = self._pending, [], 0
        return ColumnBlock.concat(pending)

    def _write_chunk(self, chunk: ColumnBlock) -> None:
        for key in self.array_keys:
            self._write_array(key, chunk)
        for key in self.ragged_keys:
            self._write_ragged(key, chunk)
        if self._schema is None:
            self.column_nodes = _case_collisions([name for name in chunk.first_row if name in chunk.columns])
        for key, other in self.column_nodes.items():
            note = (
                f"Column '{key}' of stream '{self.stream}' has the name of column '{other}' of its internal "
                f"table, ignoring case; it is written as an array node of the stream instead."
            )
            self._write_array(key, chunk, note=note)
            chunk.columns.pop(key, None)
        self._write_table(chunk)
        self.rows_written += chunk.length

    def _write_array(self, key: str, chunk: ColumnBlock, note: str | None = None) -> None:
        values = chunk.present(key)
        if not values:
            return
        lengths = {len(value) if hasattr(value, "__len__") else 0 for value in values}
        if len(lengths) > 1:
            longest = max(lengths)
            values = [list(value) + [numpy.nan] * (longest - len(value)) for value in values]
            self._note(
                f"Array lengths for key '{key}' in stream '{self.stream}' are not consistent: "
                f"min={min(lengths)}, max={longest}; the arrays are padded with NaNs."
            )
        existing = self._arrays.get(key)
        metadata = truncate_json_overflow(self.data_keys.get(key, {}))
        dtype = existing[0].dtype if existing else (metadata.get("dtype_numpy") or None)
        if dtype is not None and numpy.dtype(dtype).kind == "O":
            dtype = None
        try:
            array = numpy.array(values, dtype=dtype)
        except ValueError:
            array = numpy.array(values)
        if 0 in array.shape:  # zarr cannot chunk a zero-length dimension: TiledWriter keeps it in the table
            self._note(
                f"Internal array data for key '{key}' in stream '{self.stream}' has a "
                f"zero-length dimension (shape {array.shape}) and can not be stored "
                f"as a zarr array; it is stored in the internal table instead."
            )
            return
        chunk.columns.pop(key, None)
        if existing is None:
            metadata["dtype_numpy"] = str(array.dtype)
            client = self.node.write_array(
                array, key=key, metadata=metadata, dims=self._dims(array.shape), access_tags=self.access_tags
            )
            self._arrays[key] = (client, len(array))
            self._note(note or f"Internal array data for '{key}' in stream '{self.stream}' written as zarr.")
        else:
            client, length = existing
            client.patch(array, offset=(length,), extend=True)
            self._arrays[key] = (client, length + len(array))

    def _write_ragged(self, key: str, chunk: ColumnBlock) -> None:
        from tiled.structures.ragged import make_ragged_array

        values = chunk.present(key)
        chunk.columns.pop(key, None)
        if not values:
            return
        shape = (len(values), *self.data_keys[key].get("shape", ()))
        array = make_ragged_array(values, shape=shape)
        existing = self._arrays.get(key)
        if existing is None:
            client = self.node.write_ragged(
                array,
                key=key,
                metadata=truncate_json_overflow(self.data_keys.get(key, {})),
                dims=self._dims(shape),
                access_tags=self.access_tags,
            )
            self._arrays[key] = (client, len(values))
            self._note(f"Internal data for '{key}' in stream '{self.stream}' written as ragged array.")
        else:
            client, length = existing
            client.patch(array, offset=length, extend=True)
            self._arrays[key] = (client, length + len(values))

    def _write_table(self, chunk: ColumnBlock) -> None:
        if self._schema is None:
            table = arrow_table(chunk)
            if not table.num_columns:
                return
            self._schema = nulls_as_strings(table.schema)
            table = table.cast(self._schema)
            self._create_tables(table)
        else:
            try:
                table = arrow_table(chunk, self._schema)
            except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError) as err:
                raise ValueError(
                    f"stream '{self.stream}': rows {self.rows_written}.. do not fit the table's columns "
                    f"(typed from the first rows): {err}"
                ) from err
        for columns, client in self._tables:
            client.append_partition(0, table.select(columns) if len(self._tables) > 1 else table)

    def _create_tables(self, table: pyarrow.Table) -> None:
        parts = [("", table)]
        if table.num_columns > MAX_TABLE_COLUMNS:
            parts = [(f"_{i}", part) for i, part in enumerate(split_table(table, MAX_TABLE_COLUMNS))]
        for suffix, part in parts:
            names = set(part.column_names)  # a new list at each call of column_names: once, and as a set
            metadata = truncate_json_overflow({k: v for k, v in self.data_keys.items() if k in names})
            try:
                client = self.node.create_appendable_table(
                    schema=part.schema, key=f"internal{suffix}", metadata=metadata, access_tags=self.access_tags
                )
            except Exception:
                # A server says only "500" when its SQL storage refuses a table: ask Tiled's own rules
                # whether the content is at fault (only now: importing them costs about 200 MB).
                check_storable(part.schema, self.stream)
                raise
            self._tables.append((part.column_names, client))

    def _dims(self, shape: tuple) -> tuple[str, ...]:
        """TiledWriter's dimension names: `time`, then one shared name per distinct size in the stream."""
        dims = ["time"]
        for axis, size in enumerate(shape[1:], start=1):
            if size is None:
                dims.append(f"dim_rgd_{axis}")
                continue
            if size not in self._dim_names:
                self._dim_names[size] = f"dim_int_{len(self._dim_names) + 1}"
            dims.append(self._dim_names[size])
        return tuple(dims)

    def _note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)


def check_storable(schema: pyarrow.Schema, stream: str) -> None:
    """Raise ValueError when no SQL storage of Tiled (SQLite, DuckDB, PostgreSQL) takes a table of
    `schema` (a column name it refuses, a type it has no column for), with Tiled's own reason: the run's
    content is at fault, so it is refused the same way whichever target it goes to. Called once
    creating the table failed, since importing `tiled.adapters.sql` costs about 200 MB."""
    from tiled.adapters.sql import arrow_schema_to_column_defns

    first: Exception | None = None
    for dialect in ("duckdb", "sqlite", "postgresql"):
        try:
            arrow_schema_to_column_defns(schema, dialect)
            return
        except Exception as err:  # noqa: BLE001 - Tiled's reason is what the user sees
            first = first or err
    raise ValueError(f"stream '{stream}': Tiled's SQL storage refuses its internal table: {first}") from first


def _case_collisions(columns: list[str]) -> dict[str, str]:
    """Each column whose name an earlier one has, ignoring case -> that earlier column."""
    first: dict[str, str] = {}
    later = {}
    for name in columns:
        folded = name.lower()
        if folded in first:
            later[name] = first[folded]
        else:
            first[folded] = name
    return later


def _array_keys(data_keys: dict[str, dict]) -> tuple[list[str], list[str]]:
    """Which internal keys TiledWriter writes as zarr arrays and which as ragged arrays."""
    arrays, ragged = [], []
    for key, spec in data_keys.items():
        if "external" in spec or spec.get("dtype") != "array":
            continue
        shape = spec.get("shape", ())
        dtype_numpy = spec.get("dtype_numpy")
        if None in shape:
            ragged.append(key)
        elif 0 <= MAX_ARRAY_SIZE < math.prod(shape):
            arrays.append(key)
        elif isinstance(dtype_numpy, str) and dtype_numpy and numpy.dtype(dtype_numpy).kind in {"U", "S", "O"}:
            arrays.append(key)  # strings cannot be stored readably in SQL
    return arrays, ragged


def arrow_table(chunk: ColumnBlock, schema: pyarrow.Schema | None = None) -> pyarrow.Table:
    """The chunk's rows as the Arrow table `pyarrow.Table.from_pylist(rows, schema)` would make of them.

    Without a schema, the columns are the keys of the first row and their types are inferred; with
    one, its columns (None where a row lacks the key) converted to its types.
    """
    if schema is None:
        names = [name for name in chunk.first_row if name in chunk.columns]
        return pyarrow.Table.from_arrays([_arrow(chunk.nullable(name)) for name in names], names=names)
    columns = [_arrow(chunk.nullable(field.name), field.type) for field in schema]
    return pyarrow.Table.from_arrays(columns, schema=schema)


def _arrow(column: Any, arrow_type: pyarrow.DataType | None = None) -> Any:
    """A column as pyarrow should convert it (to `arrow_type`, if given).

    A numpy array (rows.py stores columns of nothing but Python floats or ints so) becomes the Arrow
    array pyarrow would make of those Python numbers, sharing its buffer: handing pyarrow the numpy
    array itself would make it import pandas (56 MB) to check whether it is a pandas object. When
    that is not the type wanted, pyarrow is given the Python values, as it would have been.
    """
    if not isinstance(column, numpy.ndarray):
        return column
    native = _NATIVE_TYPES.get(column.dtype)
    if native is None or (arrow_type is not None and native != arrow_type):
        return column.tolist()
    column = numpy.ascontiguousarray(column)
    return pyarrow.Array.from_buffers(native, len(column), [None, pyarrow.py_buffer(column)])


def nulls_as_strings(schema: pyarrow.Schema) -> pyarrow.Schema:
    """TiledWriter's rule: a column with no values yet is typed as string (a list of them, as list<string>)."""
    fixed = copy.copy(schema)
    for i, field in enumerate(schema):
        if pyarrow.types.is_null(field.type):
            fixed = fixed.set(i, field.with_type(pyarrow.string()))
        elif pyarrow.types.is_list(field.type) and pyarrow.types.is_null(field.type.value_type):
            fixed = fixed.set(i, field.with_type(pyarrow.list_(pyarrow.string())))
    return fixed
