"""The embedded catalog's SQLite calls, run on the event loop's own thread instead of aiosqlite's.

Tiled's catalog is SQLAlchemy on asyncio; for SQLite it goes through aiosqlite, which gives every
connection a thread of its own and hands each DBAPI call (cursor, execute, fetch, close, commit)
to it through a queue, waking the event loop through its self-pipe when the call is done. A
small run is about 70 statements, so about 650 such hand-offs at about 60 us each: 30 ms a run,
roughly a sixth of the whole write, spent passing work between two threads that never overlap
(the loop waits for every answer). The SQLite work itself is a few microseconds a statement.

In the embedded target the event loop is ours alone (the in-process app's portal), so blocking it
for the duration of one SQLite call costs nothing. `inline_sqlite(engine)` makes the engine's new
connections `InlineConnection`s: aiosqlite's connection class with its calls made directly. It
uses SQLAlchemy's own hook for this (`do_connect` may set the `async_creator_fn` that its
aiosqlite dialect calls instead of `aiosqlite.connect`, the mechanism behind `async_creator`), so
SQLAlchemy's adaptation layer, pooling and tiled's connect-time pragmas are unchanged.

`InlineConnection` overrides four of aiosqlite's own methods (how a call is queued, connecting,
starting and stopping the thread), which is why pyproject.toml pins aiosqlite's minor version;
tests/target/test_inline_sqlite.py checks that SQLite runs on the awaiting thread and no aiosqlite thread
appears while the embedded target writes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import event

__all__ = ["InlineConnection", "connect_inline", "inline_sqlite", "use_inline_connections"]


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection without its worker thread: each call runs where it is awaited."""

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    async def _connect(self) -> InlineConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    def __await__(self):  # aiosqlite starts its thread here
        return self._connect().__await__()

    def stop(self) -> None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        return None


def connect_inline(database: str | Path, *, iter_chunk_size: int = 64, **kwargs: Any) -> InlineConnection:
    """`aiosqlite.connect`, giving an `InlineConnection`."""
    return InlineConnection(lambda: sqlite3.connect(str(database), **kwargs), iter_chunk_size)


def use_inline_connections(dialect: Any, connection_record: Any, cargs: list, cparams: dict) -> None:
    cparams["async_creator_fn"] = connect_inline  # returning None: the dialect connects as usual


def inline_sqlite(engine: Any) -> None:
    """Make `engine` (an AsyncEngine on sqlite+aiosqlite) open `InlineConnection`s from now on.

    Only for an engine whose connections are all used on one event loop's thread; connections
    already in its pool keep their threads. Does nothing for other databases; idempotent."""
    sync_engine = engine.sync_engine
    if sync_engine.dialect.name != "sqlite" or sync_engine.dialect.driver != "aiosqlite":
        return
    if not event.contains(sync_engine, "do_connect", use_inline_connections):
        event.listen(sync_engine, "do_connect", use_inline_connections)
