"""The ledger's tables and how a ledger database is opened: SQLite or PostgreSQL, chosen by URL.

Three tables hold the ledger — `files` (one row per target and run file), `runs` (one row per
target and run uid) and `workers` (one row per worker process) — plus `ledger_meta`, which
records the schema version. `open_engine` turns a URL into a SQLAlchemy engine set up for
several threads and several processes, and creates the tables if they are missing.

SQLite is put in WAL mode with a busy timeout, and every writing transaction starts with
`BEGIN IMMEDIATE`, so a writer takes the one write lock before it reads anything and waits for it
(instead of failing with "database is locked" halfway through). PostgreSQL runs at its default
READ COMMITTED level; the ledger's writes are single conditional upserts, which that level
makes atomic.

This module never reads or writes a ledger row and never migrates a schema: a database written
by another schema version is refused with `LedgerSchemaError`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.types import TypeDecorator

__all__ = [
    "SCHEMA_VERSION",
    "READ_ONLY",
    "LedgerSchemaError",
    "metadata",
    "meta_table",
    "files_table",
    "runs_table",
    "workers_table",
    "normalize_url",
    "open_engine",
]

SCHEMA_VERSION = "1"

# Execution option that marks a connection as reading only: on SQLite it begins with a plain
# `BEGIN` (shared, never blocks a writer in WAL mode) instead of `BEGIN IMMEDIATE`.
READ_ONLY = "ledger_read_only"

_SQLITE_BUSY_TIMEOUT_SECONDS = 30.0
_POSTGRES_CONNECT_TIMEOUT_SECONDS = 10
# Any constant; serialises concurrent `CREATE TABLE`s of several processes on one PostgreSQL database.
_POSTGRES_SCHEMA_LOCK = 0x1ED9E7


class LedgerSchemaError(RuntimeError):
    """The database holds a ledger of a schema version this code does not know."""


class UTCDateTime(TypeDecorator):
    """A point in time, stored in UTC and always returned timezone-aware.

    SQLite has no time zones: SQLAlchemy stores naive ISO strings there, which compare correctly
    as long as every value is UTC — which this type guarantees on the way in.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the ledger stores timezone-aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

meta_table = Table(
    "ledger_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

files_table = Table(
    "ledger_files",
    metadata,
    Column("target", Text, primary_key=True),
    Column("path", Text, primary_key=True),
    Column("size", BigInteger),
    Column("mtime_ns", BigInteger),
    Column("hash", String(160)),
    Column("status", String(32), nullable=False),
    Column("reason", Text),
    Column("line", Integer),
    Column("runs", JSON, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("last_attempt", UTCDateTime),
    Column("owner", String(255)),
    Column("lease_until", UTCDateTime),
    Index("ledger_files_by_status", "target", "status"),
)

runs_table = Table(
    "ledger_runs",
    metadata,
    Column("target", Text, primary_key=True),
    Column("uid", String(255), primary_key=True),
    Column("path", Text),
    Column("status", String(32), nullable=False),
    Column("reason", Text),
    Column("line", Integer),
    Column("attempts", Integer, nullable=False),
    Column("updated", UTCDateTime, nullable=False),
    Column("owner", String(255)),
    Column("lease_until", UTCDateTime),
    Index("ledger_runs_by_status", "target", "status"),
)

workers_table = Table(
    "ledger_workers",
    metadata,
    Column("worker_id", String(255), primary_key=True),
    Column("target", Text, nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("command", String(64)),
    Column("started", UTCDateTime, nullable=False),
    Column("heartbeat", UTCDateTime, nullable=False),
    Column("last_scan", UTCDateTime),
    Column("state", Text, nullable=False),
    Index("ledger_workers_by_target", "target"),
)


def normalize_url(url: str) -> str:
    """Pick the psycopg (3) driver for bare `postgresql://` / `postgres://` URLs; others unchanged."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def open_engine(url: str, *, read_only: bool = False) -> Engine:
    """An engine for the ledger at `url`, its tables created if missing and its version checked.

    `read_only`: an engine that only reads (its transactions never take SQLite's write lock), on a
    ledger that must exist already."""
    url = normalize_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = _sqlite_engine(url, read_only)
    elif backend == "postgresql":
        engine = create_engine(
            url, pool_pre_ping=True, connect_args={"connect_timeout": _POSTGRES_CONNECT_TIMEOUT_SECONDS}
        )
    else:
        raise ValueError(f"the ledger supports SQLite and PostgreSQL URLs, not {backend!r}")
    try:
        _check_schema(engine) if read_only else _create_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _sqlite_engine(url: str, read_only: bool = False) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        if read_only and not os.path.isfile(database):
            raise LedgerSchemaError(f"no ledger at {database}")
        if not read_only:
            os.makedirs(os.path.dirname(os.path.abspath(database)), exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below issue BEGIN, not the sqlite3 module's own guesswork.
        dbapi_connection.isolation_level = None
        if read_only:  # changing the journal mode may need to write: a reader leaves it as it is
            return
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        reading = read_only or connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")

    return engine


def _check_schema(engine: Engine) -> None:
    """The ledger's version, read only; an error if there is no ledger or another version."""
    from sqlalchemy import inspect

    with engine.connect() as connection:
        connection = connection.execution_options(**{READ_ONLY: True})
        if not inspect(connection).has_table(meta_table.name):
            raise LedgerSchemaError("no ledger tables in this database")
        found = connection.execute(
            select(meta_table.c.value).where(meta_table.c.key == "schema_version")
        ).scalar_one_or_none()
    if found != SCHEMA_VERSION:
        raise LedgerSchemaError(f"ledger schema version {found} found, this ingester reads version {SCHEMA_VERSION}")


def _create_schema(engine: Engine) -> None:
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRES_SCHEMA_LOCK})
        metadata.create_all(connection, checkfirst=True)
        found = connection.execute(
            select(meta_table.c.value).where(meta_table.c.key == "schema_version")
        ).scalar_one_or_none()
        if found is None:
            connection.execute(meta_table.insert().values(key="schema_version", value=SCHEMA_VERSION))
            connection.execute(meta_table.insert().values(key="created", value=datetime.now(UTC).isoformat()))
        elif found != SCHEMA_VERSION:
            raise LedgerSchemaError(
                f"ledger schema version {found} found, this ingester writes version {SCHEMA_VERSION}"
            )
