"""Where things are, as the settings say: the path rules for external files, the folders Tiled may
read registered files from, the ledger's database and the key the ledger files records under.

Shared by `ingest-dir`, `retry`, `status` and `watch`; nothing here opens a database or a target.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ingester.config import Settings
from ingester.resolve import PathRules

__all__ = ["ledger_url", "path_rules", "readable_roots", "target_key"]


def path_rules(settings: Settings) -> PathRules:
    return PathRules(
        data_roots=tuple(Path(p).absolute() for p in settings.data_roots),
        root_map=tuple((old, str(Path(new).absolute())) for old, new in settings.root_map),
        server_paths=tuple(settings.server_paths),
    )


def readable_roots(settings: Settings, paths: Iterable[Path]) -> list[Path]:
    """Folders Tiled may read registered files from: data roots, root-map targets, or the run files' folders."""
    roots = [Path(p).absolute() for p in settings.data_roots]
    roots += [Path(new).absolute() for _, new in settings.root_map]
    if not settings.data_roots:
        roots += [(p if p.is_dir() else p.parent).absolute() for p in paths]
    return list(dict.fromkeys(roots))


def ledger_url(settings: Settings) -> str:
    """The ledger's database: as configured, else SQLite inside the catalog folder (beside it for a server)."""
    if settings.ledger:
        return settings.ledger
    if settings.tiled_uri:
        return f"sqlite:///{Path('ingester-ledger.db').absolute()}"
    folder = settings.catalog.absolute()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'ledger.db'}"


def target_key(settings: Settings) -> str:
    """Whose records the ledger keeps: the catalog folder, or the server's URI without secrets."""
    from ingester.target import describe_uri

    return describe_uri(settings.tiled_uri) if settings.tiled_uri else str(settings.catalog.absolute())
