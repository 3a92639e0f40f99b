"""The bytes of a run file as they are read: opened once, hashed and counted on the way through.

What the ledger and the run's provenance say of a file (size, mtime, content hash) comes from the
bytes the reader actually read, not from a second look: a file replaced or deleted while it is
read is described as it was read. `open_source` refuses what is not a regular file (a FIFO, a
socket, a device) without opening it, so that a reader never waits on one. Nothing here parses.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Source", "SourceFile", "NotRegularFile", "open_source", "file_kind"]

_READ_BUFFER = 1 << 20
_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFDIR: "a folder"}  # fmt: skip


@dataclass(frozen=True)
class Source:
    """What was read of a file: `size` bytes with this `digest`; `mtime_ns` when it did not change
    while it was read (else None: the next look must read it again)."""

    path: Path
    size: int
    mtime_ns: int | None
    digest: str


def file_kind(mode: int) -> str | None:
    """None for a regular file, else what it is ("a FIFO", ...)."""
    if stat.S_ISREG(mode):
        return None
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


class NotRegularFile(OSError):
    """The path names a FIFO, a socket, a device or a folder: it is not opened."""


class SourceFile(io.RawIOBase):
    """A file opened for reading whose bytes are hashed (SHA-256) and counted as they are read."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self.opened = os.fstat(self._file.fileno())
        self._hash = hashlib.sha256()
        self.bytes_read = 0
        self.at_end = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._file.readinto(buffer)
        if n:
            self._hash.update(memoryview(buffer)[:n])
            self.bytes_read += n
        elif n == 0:
            self.at_end = True
        return n

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()

    def source(self) -> Source | None:
        """What was read, once read to the end (None before)."""
        if not self.at_end:
            return None
        now = os.fstat(self._file.fileno()) if not self._file.closed else None
        same = now is not None and (now.st_size, now.st_mtime_ns) == (self.opened.st_size, self.opened.st_mtime_ns)
        unchanged = same and self.bytes_read == self.opened.st_size
        mtime = self.opened.st_mtime_ns if unchanged else None
        return Source(self.path, self.bytes_read, mtime, "sha256:" + self._hash.hexdigest())


def open_source(path: Path) -> tuple[SourceFile, io.BufferedReader]:
    """The file's `SourceFile` and a buffered reader over it. Raises `NotRegularFile` (saying what
    it is) without opening it when it is not a regular file, `OSError` when it cannot be opened."""
    kind = file_kind(os.stat(path).st_mode)
    if kind is not None:
        raise NotRegularFile(kind)
    raw = SourceFile(path)
    kind = file_kind(raw.opened.st_mode)
    if kind is not None:  # replaced between the two looks
        raw.close()
        raise NotRegularFile(kind)
    return raw, io.BufferedReader(raw, buffer_size=_READ_BUFFER)
