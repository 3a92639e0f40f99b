"""Build the internal table rows of a run's events, column by column, as TiledWriter would build them.

`RowBuilder` is fed a run's documents (descriptors, events, event pages) and hands out
`ColumnBlock`s: a few thousand consecutive rows of one stream as columns. A row is what
TiledWriter's `_RunWriter.event` builds after `RunNormalizer.event`: `seq_num`, `time`, the data
that is kept (internal and not marked unfilled, or external and marked filled; the reserved keys
`time`/`seq_num` renamed with a trailing `_` and moved to the end), then `ts_<key>` for each of
their timestamps. Event pages are expanded.

Rows are gathered as tuples of values per key layout (plain events take a path that costs a tuple
a row) and turned into columns when a block is sealed; columns of nothing but floats (or ints) are
then stored as numpy arrays, a quarter of the memory of a list of Python numbers. A row that lacks
a key another row of the block has holds `MISSING` there. `ColumnBlock.first_row` keeps the keys
of the block's first row in order: pyarrow's `Table.from_pylist`, which TiledWriter uses, takes a
table's columns from its first row only.

This stage never reads files, never talks to Tiled and never decides how rows are written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import Any

import numpy

from ingester.columns import MISSING, ColumnBlock, chunk_rows
from ingester.read.normalize_descriptor import RESERVED_DATA_KEYS, DataKeySets
from ingester.runs import Document

__all__ = ["RowBuilder", "blocks_from_rows"]


def _block_rows(width: int) -> int:
    """Rows a block holds: a divisor of the chunk size, so that chunks are whole blocks."""
    rows = chunk_rows(width)
    for parts in (5, 4, 2):
        if rows % parts == 0:
            return rows // parts
    return rows


def blocks_from_rows(rows: Iterable[dict[str, Any]], size: int) -> Iterator[ColumnBlock]:
    """Row dicts as blocks of at most `size` rows (for callers that already hold rows)."""
    segments = _Segments()
    for row in rows:
        segments.add(tuple(row), tuple(row.values()))
        if segments.count >= size:
            yield segments.seal()
    if segments.count:
        yield segments.seal()


class _Segments:
    """Rows of one stream not yet sealed: runs of rows that share a key layout, as value tuples."""

    __slots__ = ("parts", "layout", "rows", "count")

    def __init__(self) -> None:
        self.parts: list[tuple[tuple[str, ...], list[tuple]]] = []
        self.layout: tuple[str, ...] | None = None
        self.rows: list[tuple] = []
        self.count = 0

    def start(self, layout: tuple[str, ...]) -> list[tuple]:
        self.layout, self.rows = layout, []
        self.parts.append((layout, self.rows))
        return self.rows

    def add(self, layout: tuple[str, ...], values: tuple) -> None:
        rows = self.rows if layout == self.layout else self.start(layout)
        rows.append(values)
        self.count += 1

    def seal(self) -> ColumnBlock:
        columns: dict[str, Any] = {}
        sparse: set[str] = set()
        done = 0
        for layout, rows in self.parts:
            if not rows:
                continue
            for name, values in zip(layout, zip(*rows, strict=True), strict=True):
                column = columns.get(name)
                if column is None:
                    column = columns[name] = [MISSING] * done
                    if done:
                        sparse.add(name)
                column.extend(values)
            done += len(rows)
            for name, column in columns.items():
                if len(column) < done:
                    column.extend([MISSING] * (done - len(column)))
                    sparse.add(name)
        first_row = self.parts[0][0] if self.parts else ()
        self.parts, self.layout, self.rows, self.count = [], None, [], 0
        for name, column in columns.items():
            if name not in sparse:
                columns[name] = _compact(column)
        return ColumnBlock(columns, done, first_row, sparse)


def _compact(column: list[Any]) -> Any:
    """A column of Python floats (or ints that fit int64) as a numpy array; any other column as is.

    Exact: `tolist()` gives the same values back, and pyarrow types the array as it types the list.
    """
    kind = type(column[0]) if column else None
    if kind is not float and kind is not int:
        return column
    if set(map(type, column)) != {kind}:
        return column
    try:
        return numpy.array(column, dtype=numpy.float64 if kind is float else numpy.int64)
    except OverflowError:
        return column


class _StreamState:
    """One stream's rows under construction, and the plain-row layout it is filling, if any."""

    __slots__ = ("name", "segments", "block_rows", "data_keys", "ts_keys", "data_values", "ts_values")

    def __init__(self, name: str):
        self.name = name
        self.segments = _Segments()
        self.block_rows = 0  # set by the first row
        self.data_keys: frozenset[str] | None = None  # the plain layout's keys, None when there is none
        self.ts_keys: frozenset[str] | None = None
        self.data_values: Callable[[dict], tuple] = _no_values
        self.ts_values: Callable[[dict], tuple] = _no_values


def _no_values(mapping: dict) -> tuple:
    return ()


def _values_of(keys: tuple[str, ...]) -> Callable[[dict], tuple]:
    """A function giving a mapping's values for `keys`, in that order, as a tuple (KeyError if one lacks)."""
    if not keys:
        return _no_values
    if len(keys) == 1:
        (key,) = keys
        return lambda mapping: (mapping[key],)
    return itemgetter(*keys)


class RowBuilder:
    """Rows of one run's events, handed to `sink(stream, block)` a block at a time.

    Feed the run's documents in file order (any document may be fed; only descriptors, events and
    event pages matter), then call `finish()` to flush each stream's last rows, in stream order.
    A run of plain events (no `filled`, every key internal, the same keys as the row before) costs
    one tuple a row; the values of a row whose keys come in another order are put in the layout's
    order, which changes nothing (a table's columns are those of its first row).
    """

    def __init__(self, sink: Callable[[str, ColumnBlock], None]):
        self.sink = sink
        self.keys = DataKeySets()  # grows as descriptors arrive, as in RunNormalizer
        self.rows: dict[str, int] = {}  # rows per stream
        self._streams: dict[str, _StreamState] = {}
        self._of_descriptor: dict[str, _StreamState] = {}
        self._ts_names: dict[str, str] = {}

    def feed(self, document: Document) -> None:
        name = document.name
        if name == "event":
            self.event(document.doc)
        elif name == "event_page":
            self.event_page(document.doc)
        elif name == "descriptor":
            self.descriptor(document.doc)

    def descriptor(self, doc: dict[str, Any]) -> None:
        self.keys.add_descriptor(doc)
        stream = doc["name"]
        state = self._streams.get(stream)
        if state is None:
            state = self._streams[stream] = _StreamState(stream)
            self.rows[stream] = 0
        self._of_descriptor[doc["uid"]] = state

    def event(self, doc: dict[str, Any]) -> None:
        state = self._of_descriptor[doc["descriptor"]]
        segments = state.segments
        data, timestamps = doc["data"], doc["timestamps"]
        if not doc.get("filled"):
            if (
                state.data_keys is not None
                and len(data) == len(state.data_keys)
                and len(timestamps) == len(state.ts_keys)
            ) or self._plain_layout(state, data, timestamps):
                try:
                    values = (doc["seq_num"], doc["time"], *state.data_values(data), *state.ts_values(timestamps))
                except KeyError:
                    values = None
                if values is not None:
                    segments.rows.append(values)
                    segments.count += 1
                    if segments.count >= state.block_rows:
                        self._seal(state)
                    return
        self._general(state, doc)

    def event_page(self, page: dict[str, Any]) -> None:
        state = self._of_descriptor[page["descriptor"]]
        segments = state.segments
        data, timestamps = page["data"], page["timestamps"]
        if not page.get("filled") and self._plain_layout(state, data, timestamps):
            columns = [page["seq_num"], page["time"], *state.data_values(data), *state.ts_values(timestamps)]
            before = len(segments.rows)
            segments.rows.extend(zip(*columns, strict=False))
            segments.count += len(segments.rows) - before
            if segments.count >= state.block_rows:
                self._seal(state)
            return
        from event_model import unpack_event_page

        for event in unpack_event_page(page):
            self._general(state, event)

    def finish(self) -> None:
        for state in self._streams.values():
            if state.segments.count:
                self._seal(state)

    def _plain_layout(self, state: _StreamState, data: dict, timestamps: dict) -> bool:
        """Whether these keys make a plain row (all internal, no column name twice); if so, make
        them the stream's plain layout, starting a new run of rows unless it is the current one."""
        internal = self.keys.internal
        if not (internal.issuperset(data) and internal.issuperset(timestamps)):
            state.data_keys = None
            return False
        if state.data_keys is not None and state.data_keys == data.keys() and state.ts_keys == timestamps.keys():
            return True  # the current layout's keys (perhaps in another order)
        names = self._ts_names
        data_keys, ts_keys = tuple(data), tuple(timestamps)
        layout = ("seq_num", "time", *data_keys, *(names.get(k) or names.setdefault(k, f"ts_{k}") for k in ts_keys))
        if len(set(layout)) != len(layout):
            state.data_keys = None
            return False
        state.data_keys, state.ts_keys = frozenset(data_keys), frozenset(ts_keys)
        state.data_values, state.ts_values = _values_of(data_keys), _values_of(ts_keys)
        state.segments.start(layout)
        if not state.block_rows:
            state.block_rows = _block_rows(len(layout))
        return True

    def _general(self, state: _StreamState, doc: dict[str, Any]) -> None:
        state.data_keys = None  # rows of another layout come in between: look again next time
        row = _general_row(doc, self.keys)
        segments = state.segments
        segments.add(tuple(row), tuple(row.values()))
        if not state.block_rows:
            state.block_rows = _block_rows(len(row))
        if segments.count >= state.block_rows:
            self._seal(state)

    def _seal(self, state: _StreamState) -> None:
        self.rows[state.name] += state.segments.count
        state.data_keys = None  # the next row starts a new run of rows
        self.sink(state.name, state.segments.seal())


def _general_row(doc: dict[str, Any], keys: DataKeySets) -> dict[str, Any]:
    """One table row built like RunNormalizer.event + _RunWriter.event, for any event.

    Reserved keys move to the end under their new name; a key is kept if it is internal and not
    marked unfilled, or external and marked filled. Where TiledWriter's row would lose a value (a data
    key spelled exactly `ts_<key>`, overwritten by that key's timestamp), the timestamp column gets a
    trailing `_` instead (see the README's layout section).
    """
    data = dict(doc["data"])
    timestamps = dict(doc["timestamps"])
    filled = dict(doc.get("filled") or {})
    for name in RESERVED_DATA_KEYS:
        for mapping in (data, timestamps, filled):
            if name in mapping:
                mapping[f"{name}_"] = mapping.pop(name)
    internal, external = keys.internal, keys.external

    def kept(key: str) -> bool:
        return bool((key in internal and filled.get(key, True)) or (key in external and filled.get(key, False)))

    row = {"seq_num": doc["seq_num"], "time": doc["time"]}
    row.update((k, v) for k, v in data.items() if kept(k))
    for key, value in timestamps.items():
        if kept(key):
            name = f"ts_{key}"
            while name in row:  # a data key spelled `ts_<key>`: the timestamps go beside it, not over it
                name += "_"
            row[name] = value
    return row
