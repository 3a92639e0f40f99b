"""Write one run's internal (event) data: the `internal` table of each stream, and its array nodes.

Rows arrive as `(stream name, rows)` batches, each row exactly as TiledWriter builds it. They are
gathered per stream into bounded chunks (memory holds at most one chunk per stream) and each chunk
becomes one `append_partition` request. The layout is TiledWriter's: an appendable SQL table named
`internal` with the schema of the first chunk (null columns typed as strings), split into
`internal_0`, `internal_1`, ... past 1024 columns; internal arrays with more than 16 elements (or of
strings) go to zarr array nodes, variable-length ones to ragged nodes, in both cases extended chunk
by chunk.

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
from bluesky_tiled_plugins.utils import split_table, truncate_json_overflow
from bluesky_tiled_plugins.writing.tiled_writer import MAX_ARRAY_SIZE, MAX_TABLE_COLUMNS

__all__ = ["StreamTableWriter", "write_internal_data"]

MAX_CHUNK_ROWS = 50_000
MAX_CHUNK_CELLS = 1_000_000  # rows x columns held at once, so wide streams get shorter chunks


def write_internal_data(
    writers: dict[str, StreamTableWriter], row_batches: Iterable[tuple[str, list[dict[str, Any]]]]
) -> dict[str, int]:
    """Feed every batch to its stream's writer, then flush them all; returns rows written per stream."""
    for stream, rows in row_batches:
        try:
            writer = writers[stream]
        except KeyError:
            raise ValueError(f"rows for stream {stream!r}, which has no descriptor") from None
        writer.add(rows)
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
        self._pending: list[dict[str, Any]] = []
        self._chunk_rows = MAX_CHUNK_ROWS
        self._schema: pyarrow.Schema | None = None
        self._tables: list[tuple[list[str], Any]] = []  # (columns, table client) per table node
        self._arrays: dict[str, tuple[Any, int]] = {}  # key -> (array client, rows so far)
        self._dim_names: dict[int, str] = {}
        self.array_keys, self.ragged_keys = _array_keys(data_keys)

    def add(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if not self._pending and not self._tables:
            self._chunk_rows = max(1, min(MAX_CHUNK_ROWS, MAX_CHUNK_CELLS // max(1, len(rows[0]))))
        if not self._pending and len(rows) >= self._chunk_rows:
            for start in range(0, len(rows), self._chunk_rows):  # large batches go out without a copy
                self._write_chunk(rows[start : start + self._chunk_rows])
            return
        self._pending.extend(rows)
        if len(self._pending) >= self._chunk_rows:
            pending, self._pending = self._pending, []
            self.add(pending)

    def finish(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            self._write_chunk(pending)

    def _write_chunk(self, rows: list[dict[str, Any]]) -> None:
        for key in self.array_keys:
            self._write_array(key, rows)
        for key in self.ragged_keys:
            self._write_ragged(key, rows)
        self._write_table(rows)
        self.rows_written += len(rows)

    def _write_array(self, key: str, rows: list[dict[str, Any]]) -> None:
        values = [row[key] for row in rows if key in row]
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
        for row in rows:
            row.pop(key, None)
        if existing is None:
            metadata["dtype_numpy"] = str(array.dtype)
            client = self.node.write_array(
                array, key=key, metadata=metadata, dims=self._dims(array.shape), access_tags=self.access_tags
            )
            self._arrays[key] = (client, len(array))
            self._note(f"Internal array data for '{key}' in stream '{self.stream}' written as zarr.")
        else:
            client, length = existing
            client.patch(array, offset=(length,), extend=True)
            self._arrays[key] = (client, length + len(array))

    def _write_ragged(self, key: str, rows: list[dict[str, Any]]) -> None:
        from tiled.structures.ragged import make_ragged_array

        values = [row.pop(key) for row in rows if key in row]
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

    def _write_table(self, rows: list[dict[str, Any]]) -> None:
        if self._schema is None:
            table = pyarrow.Table.from_pylist(rows)
            if not table.num_columns:
                return
            self._schema = _nulls_as_strings(table.schema)
            table = table.cast(self._schema)
            self._create_tables(table)
        else:
            try:
                table = pyarrow.Table.from_pylist(rows, schema=self._schema)
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
            metadata = truncate_json_overflow({k: v for k, v in self.data_keys.items() if k in part.column_names})
            client = self.node.create_appendable_table(
                schema=part.schema, key=f"internal{suffix}", metadata=metadata, access_tags=self.access_tags
            )
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


def _nulls_as_strings(schema: pyarrow.Schema) -> pyarrow.Schema:
    """TiledWriter's rule: a column with no values yet is typed as string (a list of them, as list<string>)."""
    fixed = copy.copy(schema)
    for i, field in enumerate(schema):
        if pyarrow.types.is_null(field.type):
            fixed = fixed.set(i, field.with_type(pyarrow.string()))
        elif pyarrow.types.is_list(field.type) and pyarrow.types.is_null(field.type.value_type):
            fixed = fixed.set(i, field.with_type(pyarrow.list_(pyarrow.string())))
    return fixed
