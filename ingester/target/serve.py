"""Serve an embedded catalog folder over HTTP with Tiled, so any Tiled client can browse it.

Two ways, one app (`build_catalog_app`, the same catalog layout the embedded target writes):

- `serve_catalog` (`ingester serve`) runs it with uvicorn until interrupted. Anonymous clients may
  read; writing needs the API key.
- `open_served` (`ingester watch --serve`) opens the catalog for writing AND serves it from the same
  process, because DuckDB and the catalog's SQLite admit one process. uvicorn runs in a thread of
  its own (`CatalogServer`); the catalog's async engine must be used from one event loop, so the
  writer's adapter calls are sent to the server's loop (`LoopPortal`) and its other requests go to
  the server over loopback, with a key of its own making. Clients only read
  (`ingester.target.gate`): without an API key anyone on the address may, with one they must
  present it.

This module never reads the environment and never logs or prints the API key.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any

import uvicorn

from ingester.config import DEFAULT_CATALOG
from ingester.problems import TargetUnavailable
from ingester.target.gate import ClientGate
from ingester.target.layout import CatalogInUse, CatalogLayout, build_catalog, hold_tabular_storage
from ingester.target.targets import Target, quiet_server_log

__all__ = ["CatalogServer", "LoopPortal", "build_catalog_app", "open_served", "serve_catalog"]

STARTUP_TIMEOUT = 120.0  # seconds for the app's startup (the catalog's first connection) on a loaded machine
SHUTDOWN_TIMEOUT = 30.0  # seconds for open requests to end before connections are cut


def build_catalog_app(
    catalog_dir: Path | str,
    readable_roots: Iterable[Path | str] = (),
    api_key: str | None = None,
    *,
    allow_anonymous_read: bool = True,
) -> Any:
    """The Tiled ASGI app over the catalog in `catalog_dir`.

    `readable_roots` are the folders registered external files live in (Tiled serves nothing outside
    them). Without `api_key` a random one is made up and not shown: the catalog is then read-only.
    """
    layout = CatalogLayout(Path(catalog_dir).absolute())
    catalog = build_catalog(layout, readable_roots, create=False)
    hold_tabular_storage(catalog)  # while served, no other process writes tables it would read
    return _app(catalog, api_key or secrets.token_hex(32), allow_anonymous_read=allow_anonymous_read)


def _app(catalog: Any, api_key: str, *, allow_anonymous_read: bool) -> Any:
    from tiled.config import Authentication
    from tiled.server.app import build_app

    _check_key(api_key)
    authentication = Authentication(single_user_api_key=api_key, allow_anonymous_access=allow_anonymous_read)
    return build_app(catalog, authentication=authentication)


def _check_key(api_key: str) -> None:
    if not (api_key.isascii() and api_key.isalnum()):
        raise ValueError("the API key must contain only letters and digits (Tiled refuses other characters)")


def serve_catalog(
    catalog_dir: Path | str,
    port: int,
    host: str = "127.0.0.1",
    readable_roots: Iterable[Path | str] = (),
    api_key: str | None = None,
    *,
    allow_anonymous_read: bool = True,
    log_level: str = "info",
) -> None:
    """Serve the catalog in `catalog_dir` on `host:port` until interrupted (blocks).

    Binds to loopback unless told otherwise; the caller decides whether a wider `host` is wise.
    """
    app = build_catalog_app(catalog_dir, readable_roots, api_key, allow_anonymous_read=allow_anonymous_read)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


class LoopPortal:
    """Runs coroutine functions on an event loop running in another thread, and waits for their result:
    the one method of anyio's `BlockingPortal` that `EmbeddedNode` uses."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop

    def call(self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(func(*args), self.loop).result()


class CatalogServer(uvicorn.Server):
    """uvicorn serving an app from a thread of its own, on a socket bound before it starts.

    `start` returns once the app's startup is done (or raises why it could not start); `loop` is
    the server's event loop, `url` where clients reach it, `local_url` where this process does.
    uvicorn installs no signal handlers outside the main thread: the caller's handlers stay in place.
    """

    def __init__(self, app: Any, sock: socket.socket):
        super().__init__(
            uvicorn.Config(
                app,
                log_config=None,
                log_level="warning",
                access_log=False,
                proxy_headers=False,
                loop="asyncio",
                timeout_graceful_shutdown=SHUTDOWN_TIMEOUT,
            )  # fmt: skip
        )
        self.socket = sock
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ready = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="ingester-serve", daemon=True)
        host, port = sock.getsockname()[:2]
        self.url = _http_url(host, port)
        self.local_url = _http_url({"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host), port)

    @classmethod
    def start(cls, app: Any, sock: socket.socket) -> CatalogServer:
        server = cls(app, sock)
        server.thread.start()
        while not server.ready.wait(0.1):
            if not server.thread.is_alive() or server.failure is not None:
                server.stop()
                raise TargetUnavailable(f"the server for {server.url} did not start: {server.failure}")
        return server

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)
        self.ready.set()

    def _run(self) -> None:
        try:
            self.run(sockets=[self.socket])
        except BaseException as err:  # SystemExit from uvicorn's own startup failure included
            self.failure = err if str(err) else RuntimeError("the app's startup failed")
        finally:
            self.socket.close()

    def stop(self) -> None:
        """Let open requests end, run the app's shutdown (which closes the catalog), end the thread."""
        self.should_exit = True
        self.thread.join(SHUTDOWN_TIMEOUT + 10)
        if self.thread.is_alive():
            self.force_exit = True
            self.thread.join(10)


def _http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port` (0: any free port), or `TargetUnavailable` saying why not."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as err:
        raise TargetUnavailable(f"cannot serve on {host}:{port}: {err.strerror or err}") from None


def open_served(
    catalog_dir: Path | str = DEFAULT_CATALOG,
    readable_roots: Iterable[Path | str] = (),
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
) -> Target:
    """Open (creating if needed) the embedded catalog in `catalog_dir` and serve it on `host:port`.

    The `Target` writes as `open_embedded`'s does; its `serving` is the address clients read from,
    and closing it stops the server. Clients read anonymously unless `api_key` is given, and then
    only with it; they never write (the writer's own key is random and never shown). Raises
    `TargetUnavailable` when the address or the catalog is taken.
    """
    from tiled.client import from_context
    from tiled.client.context import Context

    from ingester.target.embedded import EmbeddedNode
    from ingester.target.inline_sqlite import inline_sqlite

    if api_key is not None:
        _check_key(api_key)
    sock = bind(host, port)
    try:
        layout = CatalogLayout(Path(catalog_dir).absolute())
        catalog = build_catalog(layout, readable_roots)
        inline_sqlite(catalog.context.engine)  # every connection is used on the server's loop
        hold_tabular_storage(catalog)
        writer_key = secrets.token_hex(32)
        app = _app(catalog, writer_key, allow_anonymous_read=True)  # the gate keeps clients to reading
        quiet_server_log()  # after tiled's server module added its handler, before its startup logs
        server = CatalogServer.start(ClientGate(app, writer_key, client_key=api_key), sock)
    except CatalogInUse as err:
        sock.close()
        raise TargetUnavailable(f"cannot open the target {catalog_dir}: {err}") from None
    except BaseException:
        sock.close()
        raise
    try:
        context = Context(f"{server.local_url}/api/v1", api_key=writer_key)
        root = from_context(context, remember_me=False)
    except BaseException:
        server.stop()
        raise
    writer_root = EmbeddedNode(LoopPortal(server.loop), catalog, root)
    return Target(
        root, context, str(layout.root), embedded=True, writer_root=writer_root, serving=server.url,
        on_close=server.stop,
    )  # fmt: skip
