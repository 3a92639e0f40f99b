"""bluesky-ingester: write Bluesky run documents from run files into Tiled, as TiledWriter lays them out.

A one-way pipeline, one subpackage a stage:

    read (discover, formats, validate, normalize, rows) -> external (resolve, plan)
    -> write (Tiled) -> ledger (record); ingest joins them per file and per batch,
    watch follows spool folders, target opens Tiled, cli is the command line.

The Python API is small: `validate_file(path)` reports what is wrong with a run file;
`ingest_paths(paths, settings)` is `ingester ingest-dir` as a function; `open_target(...)` opens the
embedded catalog or a Tiled server; `Ledger` is what was ingested; `load_settings` builds the
`Settings` the way the command line does. Names are imported when first used, so that
`import ingester` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "validate_file": "ingester.read.validate",
    "ingest_paths": "ingester.ingest.batch",
    "BatchOptions": "ingester.ingest.files",
    "Summary": "ingester.ingest.outcomes",
    "open_target": "ingester.target.targets",
    "Ledger": "ingester.ledger.store",
    "Settings": "ingester.config",
    "load_settings": "ingester.config",
    "Outcome": "ingester.status",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'ingester' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
