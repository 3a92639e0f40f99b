"""ingester.target.inline_sqlite: the embedded catalog's SQLite calls made on the event loop's thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from ingester.target.inline_sqlite import InlineConnection, connect_inline, inline_sqlite
from ingester.target.targets import open_embedded
from support.run_builder import PROVENANCE, scalar_run, write_planned


def aiosqlite_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]


def test_connection_runs_on_the_awaiting_thread_and_closes(tmp_path):
    async def main() -> tuple[list, int]:
        connection = await connect_inline(tmp_path / "x.db")
        await connection.create_function("thread_id", 0, threading.get_ident)
        await connection.execute("CREATE TABLE t (x INTEGER)")
        await connection.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
        await connection.commit()
        rows = await (await connection.execute("SELECT x, thread_id() FROM t ORDER BY x")).fetchall()
        await connection.close()
        with pytest.raises(ValueError):
            await connection.execute("SELECT 1")
        return [tuple(r) for r in rows]

    before = aiosqlite_threads()
    rows = asyncio.run(main())
    here = threading.get_ident()
    assert rows == [(1, here), (2, here)]  # SQLite ran where the call was awaited, not on a worker thread
    assert aiosqlite_threads() == before
    assert sqlite3.connect(tmp_path / "x.db").execute("SELECT count(*) FROM t").fetchone() == (2,)


def test_engine_opens_inline_connections_and_keeps_its_pragmas(tmp_path):
    async def main() -> tuple[str, type, int]:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'e.db'}")
        inline_sqlite(engine)
        inline_sqlite(engine)  # idempotent: one listener

        from sqlalchemy import event

        @event.listens_for(engine.sync_engine, "connect")
        def pragma(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (x INTEGER)"))
            await connection.execute(text("INSERT INTO t VALUES (7)"))
        async with engine.connect() as connection:
            mode = (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
            value = (await connection.execute(text("SELECT x FROM t"))).scalar_one()
            raw = await connection.get_raw_connection()
            kind = type(raw.driver_connection)
        await engine.dispose()
        return mode, kind, value

    mode, kind, value = asyncio.run(main())
    assert (mode, kind, value) == ("wal", InlineConnection, 7)


def test_other_databases_are_left_alone():
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none") if _has("asyncpg") else None
    if engine is None:
        pytest.skip("asyncpg is not installed: no non-SQLite async engine to try")
    inline_sqlite(engine)
    from sqlalchemy import event

    from ingester.target.inline_sqlite import use_inline_connections

    assert not event.contains(engine.sync_engine, "do_connect", use_inline_connections)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_embedded_target_writes_without_aiosqlite_threads(tmp_path):
    builder = scalar_run(tmp_path, n=3)
    run = builder.finish()
    before = aiosqlite_threads()
    with open_embedded(tmp_path / "cat", readable_roots=[tmp_path]) as target:
        write_planned(target.writer_root, run, builder.batches(), provenance=PROVENANCE)
        assert aiosqlite_threads() == before
        table = target.root[run.uid]["primary"].base["internal"].read()
    assert table["motor"].tolist() == [0.0, 0.5, 1.0]
