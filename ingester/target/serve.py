"""Serve an embedded catalog folder over HTTP with Tiled, so any Tiled client can browse it.

`build_catalog_app` makes the ASGI app (the same catalog layout the embedded target writes);
`serve_catalog` runs it with uvicorn until interrupted. Anonymous clients may read; writing needs the
API key. This module never creates a catalog (serving a folder that is not one is an error), never
reads the environment and never logs or prints the API key.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ingester.target.layout import CatalogLayout, build_catalog, hold_tabular_storage

__all__ = ["build_catalog_app", "serve_catalog"]


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
    from tiled.config import Authentication
    from tiled.server.app import build_app

    if api_key is not None and not (api_key.isascii() and api_key.isalnum()):
        raise ValueError("the API key must contain only letters and digits (Tiled refuses other characters)")
    layout = CatalogLayout(Path(catalog_dir).absolute())
    catalog = build_catalog(layout, readable_roots, create=False)
    hold_tabular_storage(catalog)  # while served, no other process writes tables it would read
    authentication = Authentication(
        single_user_api_key=api_key or secrets.token_hex(32),
        allow_anonymous_access=allow_anonymous_read,
    )
    return build_app(catalog, authentication=authentication)


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
    import uvicorn

    app = build_catalog_app(catalog_dir, readable_roots, api_key, allow_anonymous_read=allow_anonymous_read)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
