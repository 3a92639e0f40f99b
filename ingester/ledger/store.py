"""The ledger: what the ingester has seen, what became of it, and who is working on what.

A `Ledger` is one worker's handle on one target's records in a SQL database (SQLite file or
PostgreSQL; see `ingester.ledger.schema`). It answers "has this file been dealt with already?"
from the ledger alone (`FileRecord.settles`, `settled`: size and mtime, no hashing), records the outcome of every
file and every run, counts attempts, summarises, lists failures for `retry`, and keeps a row per
worker with a heartbeat. Records belong to a target: the same database pointed at another target
skips nothing.

Claims let several workers (threads, processes, hosts) share work: `claim_file` / `claim_run`
take a lease on a path or run uid for this worker; the lease is free again after `release`, or
once it has expired, when another worker may take it over. A claim is one conditional upsert
(insert the row, or take it over only if its lease is free, expired or already ours), atomic on
PostgreSQL by row locking and on SQLite because every write transaction holds the database's
one write lock. Leases are measured with the workers' clocks (UTC), so hosts sharing a ledger
need synchronised clocks; a lease should be much longer than any expected clock skew.

Statuses of a file or run: `ingested` and `already-present` (its runs are in the target),
`incomplete` (no stop document yet), `refused` (the content is wrong), `failed` (writing went
wrong), and `claimed` (a claim placed the row, no outcome recorded yet). Every outcome status is
settled for unchanged bytes: a file in any of the five is skipped when size and mtime match,
because reading the same bytes again would give the same answer. Changed files are looked at
again whatever their status; failed files are re-attempted by `retry` (refused ones when it is asked to).

This module never reads a run file, never hashes, never talks to Tiled and never decides an
outcome: it records what the pipeline reports. Recording does not check claims.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from sqlalchemy import Connection, Engine, Table, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ingester.ledger.records import CLAIMED, FileRecord, RunRecord, WorkerRecord
from ingester.ledger.schema import READ_ONLY, files_table, open_engine, runs_table, workers_table
from ingester.status import RECORDED

__all__ = ["Ledger", "default_worker_id"]


def default_worker_id() -> str:
    """`host:pid` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _now() -> datetime:
    return datetime.now(UTC)


def _path_key(path: str | os.PathLike[str]) -> str:
    return os.path.abspath(os.fspath(path))


def _outcome(status: str) -> str:
    if status not in RECORDED:
        raise ValueError(f"unknown ledger status {status!r}; expected one of {sorted(RECORDED)}")
    return str(status)


def _statuses(status: str | Iterable[str] | None) -> list[str] | None:
    if status is None:
        return None
    return [status] if isinstance(status, str) else list(status)


class Ledger:
    """One worker's handle on one target's records. Safe to share between threads."""

    def __init__(self, engine: Engine, target: str, *, worker_id: str | None = None, command: str | None = None):
        self._engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self.target = target
        self.worker_id = worker_id or default_worker_id()
        self.command = command
        self.started = _now()
        # SQLite has one writer at a time; this process's threads queue for it here, woken as soon as
        # it is free, rather than in SQLite's busy handler, which sleeps 1, 2, 5, 10... ms between tries.
        self._write_turn = threading.RLock() if engine.dialect.name == "sqlite" else nullcontext()

    @classmethod
    def open(
        cls, url: str, target: str, *, worker_id: str | None = None, command: str | None = None, read_only: bool = False
    ) -> Self:
        """Open (creating tables if needed) the ledger at SQLAlchemy `url` for records of `target`.

        `read_only`: only read it (`status`): nothing is created, no write lock is ever taken, and a
        ledger that is not there is an error."""
        return cls(open_engine(url, read_only=read_only), target, worker_id=worker_id, command=command)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- files -------------------------------------------------------------------------------

    def lookup(self, path: str | os.PathLike[str]) -> FileRecord | None:
        row = self._read_one(select(files_table).where(*self._file_key(path)))
        return None if row is None else FileRecord(**{**row, "runs": tuple(row["runs"] or ())})

    def record_file(
        self,
        path: str | os.PathLike[str],
        *,
        size: int,
        mtime_ns: int,
        hash: str | None,
        status: str,
        reason: str | None = None,
        line: int | None = None,
        runs: Iterable[str] = (),
    ) -> None:
        """Record the outcome of one attempt at a file; counts the attempt. Leaves any claim alone."""
        now = _now()
        table = files_table
        stmt = self._insert(table).values(
            target=self.target, path=_path_key(path), size=size, mtime_ns=mtime_ns, hash=hash,
            status=_outcome(status), reason=reason, line=line, runs=list(runs), attempts=1,
            first_seen=now, last_seen=now, last_attempt=now,
        )  # fmt: skip
        changed = ("size", "mtime_ns", "hash", "status", "reason", "line", "runs", "last_seen", "last_attempt")
        set_: dict[str, Any] = {name: stmt.excluded[name] for name in changed}
        set_["attempts"] = table.c.attempts + 1
        with self._writing() as connection:
            connection.execute(stmt.on_conflict_do_update(index_elements=["target", "path"], set_=set_))

    def settled(self, files: Iterable[tuple[str | os.PathLike[str], int, int]]) -> dict[str, str]:
        """Of `files` (path, size, mtime_ns), those settled with that size and mtime: path -> status.

        One query for the whole target instead of one a file: a pass over a folder the ledger knows
        costs little more than listing it."""
        wanted = {_path_key(path): (size, mtime_ns) for path, size, mtime_ns in files}
        columns = (files_table.c.path, files_table.c.size, files_table.c.mtime_ns, files_table.c.status)
        with self._reading() as connection:
            rows = connection.execute(select(*columns).where(files_table.c.target == self.target))
            return {
                path: status
                for path, size, mtime_ns, status in rows
                if wanted.get(path) == (size, mtime_ns) and status in RECORDED
            }

    def touch_all(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        """`touch` for many files, in one transaction."""
        keys, now = sorted(_path_key(path) for path in paths), _now()
        with self._writing() as connection:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                where = (files_table.c.target == self.target, files_table.c.path.in_(chunk))
                connection.execute(update(files_table).where(*where).values(last_seen=now))

    def touch(self, path: str | os.PathLike[str]) -> bool:
        """Note that a known file was seen again (and skipped); false if the ledger does not know it."""
        with self._writing() as connection:
            result = connection.execute(update(files_table).where(*self._file_key(path)).values(last_seen=_now()))
        return result.rowcount > 0

    def summary(self) -> dict[str, int]:
        """How many files of this target are in each status."""
        query = (
            select(files_table.c.status, func.count())
            .where(files_table.c.target == self.target)
            .group_by(files_table.c.status)
            .order_by(files_table.c.status)
        )
        with self._reading() as connection:
            return {status: count for status, count in connection.execute(query)}

    def files(self, status: str | Iterable[str] | None = None) -> list[FileRecord]:
        """This target's files, by path; only those in `status` (one or several) if given."""
        query = select(files_table).where(files_table.c.target == self.target).order_by(files_table.c.path)
        if (wanted := _statuses(status)) is not None:
            query = query.where(files_table.c.status.in_(wanted))
        with self._reading() as connection:
            rows = connection.execute(query).mappings().all()
        return [FileRecord(**{**row, "runs": tuple(row["runs"] or ())}) for row in rows]

    # --- runs --------------------------------------------------------------------------------

    def lookup_run(self, uid: str) -> RunRecord | None:
        row = self._read_one(select(runs_table).where(*self._run_key(uid)))
        return None if row is None else RunRecord(**row)

    def record_run(
        self,
        uid: str,
        path: str | os.PathLike[str] | None,
        status: str,
        reason: str | None = None,
        line: int | None = None,
    ) -> None:
        """Record the outcome of one attempt at a run; counts the attempt. Leaves any claim alone."""
        now = _now()
        stmt = self._insert(runs_table).values(
            target=self.target, uid=uid, path=None if path is None else _path_key(path),
            status=_outcome(status), reason=reason, line=line, attempts=1, updated=now,
        )  # fmt: skip
        set_: dict[str, Any] = {name: stmt.excluded[name] for name in ("path", "status", "reason", "line", "updated")}
        set_["attempts"] = runs_table.c.attempts + 1
        with self._writing() as connection:
            connection.execute(stmt.on_conflict_do_update(index_elements=["target", "uid"], set_=set_))

    def count_runs(self, status: str, reason_prefix: str) -> int:
        """How many of this target's runs are in `status` with a reason starting with `reason_prefix`."""
        query = select(func.count()).where(
            runs_table.c.target == self.target,
            runs_table.c.status == status,
            runs_table.c.reason.startswith(reason_prefix, autoescape=True),
        )
        with self._reading() as connection:
            return int(connection.execute(query).scalar_one())

    def runs(self, status: str | Iterable[str] | None = None) -> list[RunRecord]:
        """This target's runs, by uid; only those in `status` (one or several) if given."""
        query = select(runs_table).where(runs_table.c.target == self.target).order_by(runs_table.c.uid)
        if (wanted := _statuses(status)) is not None:
            query = query.where(runs_table.c.status.in_(wanted))
        with self._reading() as connection:
            return [RunRecord(**row) for row in connection.execute(query).mappings()]

    # --- claims ------------------------------------------------------------------------------

    def claim_file(self, path: str | os.PathLike[str], lease_seconds: float, *, taking_over: str | None = None) -> bool:
        """Take (or extend) this worker's lease on a file; false if another worker holds a live one.
        `taking_over`: a worker known to be dead whose lease is taken even though it has not expired."""
        now = _now()
        fresh = {"path": _path_key(path), "status": CLAIMED, "runs": [], "attempts": 0}
        row = {**fresh, "first_seen": now, "last_seen": now}
        return self._claim(files_table, row, now, lease_seconds, taking_over)

    def renew(self, path: str | os.PathLike[str], lease_seconds: float) -> bool:
        """Extend this worker's lease on a file; false if the file is not (any longer) ours."""
        return self._renew(files_table, self._file_key(path), lease_seconds)

    def release(self, path: str | os.PathLike[str]) -> bool:
        """Give up this worker's lease on a file; false if it held none."""
        return self._release(files_table, self._file_key(path))

    def claim_run(
        self, uid: str, lease_seconds: float, *, path: str | os.PathLike[str] | None = None,
        taking_over: str | None = None,
    ) -> bool:  # fmt: skip
        """Take (or extend) this worker's lease on a run uid; false if another worker holds a live one.
        `taking_over`: as for `claim_file`."""
        fresh = {"uid": uid, "path": None if path is None else _path_key(path), "status": CLAIMED, "attempts": 0}
        now = _now()
        return self._claim(runs_table, {**fresh, "updated": now}, now, lease_seconds, taking_over)

    def renew_run(self, uid: str, lease_seconds: float) -> bool:
        return self._renew(runs_table, self._run_key(uid), lease_seconds)

    def release_run(self, uid: str) -> bool:
        return self._release(runs_table, self._run_key(uid))

    def _claim(
        self, table: Table, fresh: dict[str, Any], now: datetime, lease_seconds: float, taking_over: str | None
    ) -> bool:
        until = now + _lease(lease_seconds)
        stmt = self._insert(table).values(target=self.target, **fresh, owner=self.worker_id, lease_until=until)
        owners = [self.worker_id] if taking_over is None else [self.worker_id, taking_over]
        free = or_(
            table.c.owner.is_(None),
            table.c.lease_until.is_(None),
            table.c.lease_until <= now,
            table.c.owner.in_(owners),
        )
        keys = [column.name for column in table.primary_key.columns]
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={"owner": self.worker_id, "lease_until": until}, where=free
        ).returning(table.c.owner)
        with self._writing() as connection:
            # The update is skipped (no row returned) when someone else holds a live lease.
            return connection.execute(stmt).first() is not None

    def _renew(self, table: Table, key: list[Any], lease_seconds: float) -> bool:
        until = _now() + _lease(lease_seconds)
        with self._writing() as connection:
            result = connection.execute(
                update(table).where(*key, table.c.owner == self.worker_id).values(lease_until=until)
            )
        return result.rowcount > 0

    def _release(self, table: Table, key: list[Any]) -> bool:
        mine = [*key, table.c.owner == self.worker_id]
        with self._writing() as connection:
            # A row that only a claim placed has nothing to remember once the claim is gone.
            removed = connection.execute(delete(table).where(*mine, table.c.status == CLAIMED)).rowcount
            freed = connection.execute(update(table).where(*mine).values(owner=None, lease_until=None)).rowcount
        return removed + freed > 0

    # --- workers -----------------------------------------------------------------------------

    def heartbeat(self, state: str, *, scanned: bool = False) -> None:
        """Say this worker is alive and what it is doing; `scanned` marks a finished scan."""
        now = _now()
        stmt = self._insert(workers_table).values(
            worker_id=self.worker_id, target=self.target, host=socket.gethostname(), pid=os.getpid(),
            command=self.command, started=self.started, heartbeat=now, last_scan=now if scanned else None,
            state=state,
        )  # fmt: skip
        changed = ["target", "host", "pid", "command", "heartbeat", "state"] + (["last_scan"] if scanned else [])
        set_ = {name: stmt.excluded[name] for name in changed}
        with self._writing() as connection:
            connection.execute(stmt.on_conflict_do_update(index_elements=["worker_id"], set_=set_))

    def workers(self) -> list[WorkerRecord]:
        """Every worker that gave a heartbeat for this target, most recently alive first."""
        query = (
            select(workers_table)
            .where(workers_table.c.target == self.target)
            .order_by(workers_table.c.heartbeat.desc(), workers_table.c.worker_id)
        )
        with self._reading() as connection:
            return [WorkerRecord(**row) for row in connection.execute(query).mappings()]

    def reachable(self) -> bool:
        """Whether the ledger answers a query now (for a health check: never raises)."""
        try:
            with self._reading() as connection:
                connection.execute(
                    select(func.count()).select_from(workers_table).where(workers_table.c.target == self.target)
                )
        except Exception:
            return False
        return True

    # --- plumbing ----------------------------------------------------------------------------

    def _file_key(self, path: str | os.PathLike[str]) -> list[Any]:
        return [files_table.c.target == self.target, files_table.c.path == _path_key(path)]

    def _run_key(self, uid: str) -> list[Any]:
        return [runs_table.c.target == self.target, runs_table.c.uid == uid]

    def _read_one(self, query: Any) -> dict[str, Any] | None:
        with self._reading() as connection:
            row = connection.execute(query).mappings().first()
        return None if row is None else dict(row)

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._engine.connect() as connection:
            yield connection.execution_options(**{READ_ONLY: True})

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with self._write_turn, self._engine.begin() as connection:
            yield connection


def _lease(lease_seconds: float) -> timedelta:
    if lease_seconds <= 0:
        raise ValueError(f"a lease must last a positive time, not {lease_seconds} s")
    return timedelta(seconds=lease_seconds)
