"""A Tiled server on PostgreSQL (catalog and tabular storage) for tests, started the way users do.

`scripts/tiled-postgres.sh` runs in a subprocess on a free loopback port with fresh databases of
its own (unique names); `close` stops it and drops them. The PostgreSQL server comes from
INGESTER_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/test): unset, the tests
that use the `tiled_on_postgres` fixture (tests/conftest.py) are skipped; set but unreachable, they fail (the server is started
inside the test, by `start()`, not while setting the fixture up).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from support.corpus import REPO
from support.servers import free_port

POSTGRES_ENV = "INGESTER_TEST_POSTGRES_URL"
SCRIPT = REPO / "scripts" / "tiled-postgres.sh"
API_KEY = "scaleouttestkey"


class PostgresTiled:
    """Fresh databases (catalog, tables, ledger) on one PostgreSQL server, and a Tiled over the first two."""

    def __init__(self, postgres_url: str, workdir: Path, readable: Path):
        self.server_url = make_url(postgres_url).set(drivername="postgresql")
        self.workdir, self.readable = workdir, readable
        tag = uuid.uuid4().hex[:10]
        self.databases = {part: f"ingester_test_{tag}_{part}" for part in ("catalog", "tables", "ledger")}
        self.port = free_port()
        self.api_key = API_KEY
        self.process: subprocess.Popen | None = None
        self._created: list[str] = []

    def url(self, part: str) -> str:
        return self.server_url.set(database=self.databases[part]).render_as_string(hide_password=False)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ledger_url(self) -> str:
        return self.url("ledger")

    def start(self, timeout: float = 60.0) -> PostgresTiled:
        """Create the ledger database, start the server (which creates its own two) and wait for it."""
        self._create_database(self.databases["ledger"])
        self._created += [self.databases["catalog"], self.databases["tables"]]
        env = {**os.environ, "TILED_SINGLE_USER_API_KEY": self.api_key}
        env.pop("TILED_API_KEY", None)
        self.log = open(self.workdir / "tiled-server.log", "wb")
        self.process = subprocess.Popen(
            [str(SCRIPT), "--postgres", self.server_url.set(database="postgres").render_as_string(hide_password=False),
             "--catalog-db", self.databases["catalog"], "--tables-db", self.databases["tables"],
             "--data", str(self.workdir / "tiled-data"), "--read", str(self.readable), "--port", str(self.port),
             "--pool", "20"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Tiled server exited: {self.log_text()[-3000:]}")
            try:
                response = httpx.get(f"{self.uri}/api/v1/", timeout=2)
                if response.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"the Tiled server did not answer in {timeout} s: {self.log_text()[-3000:]}")

    def log_text(self) -> str:
        return (self.workdir / "tiled-server.log").read_text(errors="replace")

    def client(self):
        from tiled.client import from_uri

        return from_uri(self.uri, api_key=self.api_key)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process is not None:
            self.log.close()
        for name in self._created:
            self._drop_database(name)

    def _admin(self):
        return psycopg.connect(
            self.server_url.set(database="postgres").render_as_string(hide_password=False),
            autocommit=True,
            connect_timeout=10,
        )

    def _create_database(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._created.append(name)

    def _drop_database(self, name: str) -> None:
        try:
            with self._admin() as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        except psycopg.Error:
            pass  # the server was unreachable to begin with: the test has failed already
