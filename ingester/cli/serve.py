"""`ingester serve`: the embedded catalog over HTTP, for any Tiled client."""

from __future__ import annotations

import typer

from ingester.cli.options import CatalogOpt, ConfigOpt, DataRootOpt, HostOpt, PortOpt, build_settings
from ingester.config import readable_roots

__all__ = ["serve"]


def serve(
    catalog: CatalogOpt = None,
    port: PortOpt = 8000,
    host: HostOpt = "127.0.0.1",
    data_root: DataRootOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the embedded catalog with Tiled, for any Tiled client (bluesky-tiled-plugins' included).

    Anyone may read; writing needs the API key from TILED_API_KEY (without it the catalog is read-only).
    Registered files are read from the data roots and the folders earlier ingests used.
    """
    from ingester.target.layout import CatalogInUse, CatalogLayout
    from ingester.target.serve import serve_catalog

    settings = build_settings(config, catalog=catalog, data_roots=data_root)
    layout = CatalogLayout(settings.catalog.absolute())
    if not layout.exists():
        typer.echo(f"error: no catalog in {layout.root} (run `ingester ingest-dir` first)", err=True)
        raise typer.Exit(2)
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    roots = readable_roots(settings)
    typer.echo(f"serving {layout.root} at http://{host}:{port} ({'read/write' if api_key else 'read-only'})", err=True)
    try:
        serve_catalog(layout.root, port, host=host, readable_roots=roots, api_key=api_key, log_level="warning")
    except (ValueError, CatalogInUse) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
