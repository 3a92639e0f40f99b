"""Hold the row blocks of a file's runs between reading the file and writing the runs, in bounded memory.

A run's rows cannot be written before the whole file has been read, validated and its external
files resolved (a refused run must leave nothing in Tiled), so `RowSpool` keeps each run's
`ColumnBlock`s in the order they were made. Blocks stay in memory up to `memory_bytes` in all;
beyond that they are pickled, in order, into one anonymous temporary file (removed by the OS when
it is closed, even if the process dies). `blocks(run)` gives a run's blocks back, one at a time,
each read from the disk only when it is asked for. Small runs never touch the disk.

This module never looks inside the rows and never talks to Tiled.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from ingester.columns import ColumnBlock

__all__ = ["RowSpool", "SPOOL_MEMORY_BYTES"]

SPOOL_MEMORY_BYTES = 24 * 2**20


class RowSpool:
    """Row blocks per run, in memory up to a bound and spilled to a temporary file beyond it.

    Use as a context manager (or call `close`): the temporary file goes with it.
    """

    def __init__(self, memory_bytes: int = SPOOL_MEMORY_BYTES, directory: str | None = None):
        self.memory_bytes = memory_bytes
        self.directory = directory
        self.in_memory = 0  # bytes of the blocks held in memory (estimated)
        self.spilled = 0  # blocks written to the temporary file
        self._runs: dict[Any, list[tuple[str, ColumnBlock | tuple[int, int]]]] = {}
        self._file: IO[bytes] | None = None

    def add(self, run: Any, stream: str, block: ColumnBlock) -> None:
        """Keep `block` (rows of `stream` of `run`), after the blocks added before it."""
        size = block.nbytes()
        entries = self._runs.setdefault(run, [])
        if self.in_memory + size <= self.memory_bytes:
            self.in_memory += size
            entries.append((stream, block))
            return
        file = self._spill_file()
        offset = file.seek(0, 2)
        pickle.dump((block.columns, block.length, block.first_row, block.sparse), file, protocol=5)
        entries.append((stream, (offset, file.tell() - offset)))
        self.spilled += 1

    def blocks(self, run: Any) -> Iterator[tuple[str, ColumnBlock]]:
        """The blocks of `run` in the order they were added; each is let go once handed out."""
        entries = self._runs.get(run, [])
        for i, (stream, entry) in enumerate(entries):
            if isinstance(entry, ColumnBlock):
                block = entry
                self.in_memory -= block.nbytes()
            else:
                assert self._file is not None
                offset, _ = entry
                self._file.seek(offset)
                block = ColumnBlock(*pickle.load(self._file))
            entries[i] = (stream, ColumnBlock({}, 0, (), set()))  # handed out: drop our reference
            yield stream, block
        self._runs.pop(run, None)

    def discard(self, run: Any) -> None:
        """Forget the blocks of `run` (refused, or not to be written)."""
        for _, entry in self._runs.pop(run, []):
            if isinstance(entry, ColumnBlock):
                self.in_memory -= entry.nbytes()

    def close(self) -> None:
        self._runs.clear()
        self.in_memory = 0
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RowSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spill_file(self) -> IO[bytes]:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="ingester-rows-", dir=self.directory)
        return self._file
