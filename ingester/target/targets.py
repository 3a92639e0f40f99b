"""Open the place runs are written to: an embedded catalog folder, or a remote Tiled server.

The embedded default is a catalog folder (see `ingester.target.layout`) written in-process with no
server and no network (catalog -> ASGI app -> in-process client). The remote target is a Tiled URI
plus an API key handed in by the caller. Either way the caller gets a `Target` whose `root` is a
tiled client `Container`, and closes it (or uses it as a context manager) to shut everything down.

This module never reads the environment or argv, never logs the API key, and writes no run: that is
the writer's job. The heavy server side of tiled is imported only for the embedded catalog.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ingester.config import DEFAULT_CATALOG, redact_uri
from ingester.problems import TargetUnavailable
from ingester.target.layout import CatalogLayout, build_catalog, hold_tabular_storage

__all__ = ["Target", "open_embedded", "open_remote", "open_target", "quiet_server_log"]


class Target:
    """An open write target: `root` is the tiled `Container` runs go into; close it when done.

    `writer_root` is what the writer writes runs into: `root` itself for a Tiled server, and for the
    embedded catalog an `EmbeddedNode`, which writes through the in-process catalog adapter (same
    layout, without the HTTP round trip; see ingester.target.embedded), and what `export` reads runs
    back through the same way (ingester.export.catalog_read). `description` names the
    target for logs (a folder or a URI without credentials). `serving`: the address the catalog is
    served at for other clients while it is written (`ingester.target.serve.open_served`), else None;
    `on_close` is called after the client is closed (stopping that server).
    """

    def __init__(  # noqa: PLR0913
        self,
        root: Any,
        context: Any,
        description: str,
        *,
        embedded: bool,
        writer_root: Any = None,
        serving: str | None = None,
        on_close: Callable[[], None] | None = None,
    ):
        self.root = root
        self.writer_root = root if writer_root is None else writer_root
        self.context = context
        self.description = description
        self.embedded = embedded
        self.serving = serving
        self._on_close = on_close
        self._closed = False

    def close(self) -> None:
        """Shut the client down; embedded, this also stops the in-process app, whose shutdown closes
        the catalog's connection pool and releases the tabular storage's connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.context.close()
        finally:
            if self._on_close is not None:
                self._on_close()

    def reachable(self, timeout: float = 2.0) -> bool:
        """Whether the target answers now (for a health check: never raises). The embedded catalog is
        in this process: reachable while open. A Tiled server: its API root answers an anonymous GET
        within `timeout` seconds with anything but a server error (sent without the API key)."""
        if self._closed:
            return False
        if self.embedded:
            return True
        import httpx

        try:
            return httpx.get(str(self.context.api_uri), timeout=timeout).status_code < 500
        except httpx.HTTPError:
            return False

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Target {self.description}>"


def open_embedded(
    catalog_dir: Path | str = DEFAULT_CATALOG, readable_roots: Iterable[Path | str] = (), *, writer: int = 0
) -> Target:
    """Open (creating if needed) the embedded catalog in `catalog_dir`, in-process.

    `readable_roots` are the folders external files may be registered from (Tiled refuses to read
    a registered file outside them). `writer`: which writer process this is (its DuckDB file).
    """
    from tiled.client import from_context
    from tiled.client.context import Context
    from tiled.server.app import build_app

    quiet_server_log()
    layout = CatalogLayout(Path(catalog_dir).absolute())
    catalog = build_catalog(layout, readable_roots, writer=writer)
    from ingester.target.embedded import EmbeddedNode
    from ingester.target.inline_sqlite import inline_sqlite

    inline_sqlite(catalog.context.engine)  # before the app's startup opens the first connection
    hold_tabular_storage(catalog)

    context = Context.from_app(build_app(catalog))
    try:
        root = from_context(context)
    except BaseException:
        context.close()
        raise
    writer_root = EmbeddedNode(context.http_client.portal, catalog, root)
    return Target(root, context, str(layout.root), embedded=True, writer_root=writer_root)


def quiet_server_log() -> None:
    """tiled's app logs its version to stdout at startup: fine for a server, noise for a batch job."""
    import logging

    server_log = logging.getLogger("tiled.server.app")
    server_log.setLevel(logging.WARNING)
    for handler in list(server_log.handlers):
        server_log.removeHandler(handler)


def open_remote(tiled_uri: str, api_key: str | None) -> Target:
    """Connect to a running Tiled server; the API key comes from the caller, never from here."""
    from tiled.client import from_context
    from tiled.client.context import Context

    context, node_path_parts = Context.from_any_uri(tiled_uri, api_key=api_key)
    try:
        root = from_context(context, node_path_parts=node_path_parts, remember_me=False)
    except BaseException:
        context.close()
        raise
    return Target(root, context, redact_uri(tiled_uri), embedded=False)


def open_target(
    *,
    tiled_uri: str | None = None,
    api_key: str | None = None,
    catalog_dir: Path | str = DEFAULT_CATALOG,
    readable_roots: Iterable[Path | str] = (),
) -> Target:
    """The remote server when `tiled_uri` is given, else the embedded catalog in `catalog_dir`.

    Raises `TargetUnavailable` (naming the target without secrets) when it cannot be opened."""
    try:
        if tiled_uri:
            return open_remote(tiled_uri, api_key)
        return open_embedded(catalog_dir, readable_roots)
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "lock" in reason.lower():
            reason += " (is another ingester or `ingester serve` using this catalog?)"
        where = redact_uri(tiled_uri) if tiled_uri else catalog_dir
        raise TargetUnavailable(f"cannot open the target {where}: {reason}") from None
