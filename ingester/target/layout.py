"""The embedded catalog's folder: where its parts live, and creating Tiled's catalog in it.

An embedded catalog is a folder holding Tiled's SQL catalog (`catalog.db`), its SQL tabular storage
(`storage.duckdb`, and `storage-k.duckdb` of writer process k) and a `data/` folder for zarr arrays.
`build_catalog` gives tiled's catalog adapter over it, creating it first if asked. Nothing here
opens a client or writes a run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ROOT_SPECS",
    "CatalogLayout",
    "CatalogInUse",
    "build_catalog",
    "hold_tabular_storage",
    "initialize_catalog_database",
]

# The root's spec makes bluesky-tiled-plugins' client present the catalog as a CatalogOfBlueskyRuns (v3: SQL).
ROOT_SPECS = [{"name": "CatalogOfBlueskyRuns", "version": "3.0"}]


@dataclass(frozen=True)
class CatalogLayout:
    """Where the parts of an embedded catalog live inside its folder.

    The tabular storage is DuckDB, as in tiled's own SimpleTiledServer. SQLite was measured too
    (appends of 100k rows x 18 columns: about 0.25 s either way) and would let several processes
    open the folder at once, but tiled 0.2.20 cannot store list columns in SQLite, so small internal
    arrays (<= 16 elements, kept in the table by TiledWriter) and ragged arrays could not be written.
    DuckDB's price: one process at a time holds a DuckDB file (a second one fails with a lock
    error), so while `ingester serve` runs, ingest through its HTTP address instead. To write with
    several processes at once (`ingest-dir` on many files, see ingester.ingest.workers), writer process
    `k` > 0 keeps its tables in `storage-k.duckdb` beside `storage.duckdb`; every process opening the
    folder reads all of them (`tabular_files`).
    """

    root: Path

    @property
    def catalog_db(self) -> Path:
        return self.root / "catalog.db"

    @property
    def tabular_db(self) -> Path:
        return self.root / "storage.duckdb"

    def tabular_db_for(self, writer: int = 0) -> Path:
        """The DuckDB file writer process `writer` creates tables in (0: the one a single process uses)."""
        return self.tabular_db if writer == 0 else self.root / f"storage-{writer}.duckdb"

    def tabular_files(self) -> list[Path]:
        """Every DuckDB file of the folder that holds tables: the main one and those of writer processes."""
        extra = sorted(self.root.glob("storage-*.duckdb"), key=lambda p: (len(p.name), p.name))
        return [p for p in [self.tabular_db, *extra] if p.is_file()]

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def roots_file(self) -> Path:
        """The folders external files were registered from, kept so `serve` can read them later."""
        return self.root / "readable-roots.json"

    def remember_roots(self, roots: Iterable[Path | str]) -> list[str]:
        """Merge `roots` into the remembered ones; return them all (registered files stay readable)."""
        known = json.loads(self.roots_file.read_text()) if self.roots_file.is_file() else []
        merged = list(dict.fromkeys([*known, *(str(Path(r).absolute()) for r in roots)]))
        if merged != known:
            tmp = self.roots_file.with_suffix(f".{os.getpid()}.tmp")  # writer processes may do this at once
            tmp.write_text(json.dumps(merged, indent=1))
            tmp.replace(self.roots_file)
        return merged

    @property
    def catalog_uri(self) -> str:
        return f"sqlite:///{self.catalog_db}"

    def exists(self) -> bool:
        return self.catalog_db.is_file()


def build_catalog(
    layout: CatalogLayout, readable_roots: Iterable[Path | str] = (), *, create: bool = True, writer: int = 0
) -> Any:
    """The tiled catalog adapter over an embedded catalog folder (created if missing and `create`).

    New tables go to the DuckDB file of writer process `writer`; the folder's other DuckDB files
    are readable storage (tables written by other writer processes), opened only when read."""
    from tiled.catalog import from_uri as catalog_from_uri

    new = not layout.exists()
    if new and not create:
        raise FileNotFoundError(f"no catalog in {layout.root} (expected {layout.catalog_db.name})")
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    if new:
        initialize_catalog_database(layout.catalog_uri)
    own = layout.tabular_db_for(writer)
    others = [f"duckdb:///{path}" for path in layout.tabular_files() if path != own]
    return catalog_from_uri(
        layout.catalog_uri,
        specs=ROOT_SPECS,
        writable_storage=[str(layout.data_dir), f"duckdb:///{own}"],
        readable_storage=[*layout.remember_roots(readable_roots), *others],
    )


def initialize_catalog_database(uri: str) -> None:
    """Create Tiled's catalog tables and stamp them with the current schema revision.

    The same two steps as `tiled catalog init`, done in-process: tiled's own `init_if_not_exists`
    starts that command in a subprocess (a second interpreter importing tiled: ~3-4 s), which is
    most of the time a first `ingest-dir` takes. The async part runs in a thread of its own so it
    never meets a running event loop.
    """
    import asyncio
    import threading

    from sqlalchemy.ext.asyncio import create_async_engine
    from tiled.alembic_utils import stamp_head
    from tiled.catalog.alembic_constants import ALEMBIC_DIR, ALEMBIC_INI_TEMPLATE_PATH
    from tiled.catalog.core import initialize_database
    from tiled.utils import ensure_specified_sql_driver

    uri = ensure_specified_sql_driver(uri)

    async def create_tables() -> None:
        engine = create_async_engine(uri)
        try:
            await initialize_database(engine)
        finally:
            await engine.dispose()

    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(create_tables())
        except BaseException as error:  # re-raised in the caller's thread
            failure.append(error)

    worker = threading.Thread(target=run, name="catalog-init")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    stamp_head(ALEMBIC_INI_TEMPLATE_PATH, ALEMBIC_DIR, uri)


class CatalogInUse(RuntimeError):
    """Another process holds the catalog's table storage (DuckDB admits one process a file)."""


def hold_tabular_storage(catalog: Any) -> None:
    """Open the DuckDB file(s) this process writes tables to now, and keep them open until the
    catalog is closed, or raise `CatalogInUse` naming the process that holds one.

    tiled opens its table storage at the first table written and keeps it open; left to that, two
    processes on one folder would both start, and every table of the second would fail to lock.
    Taking the file at once makes the second say so before it begins."""
    import re

    from tiled.storage import SQLStorage

    for storage in catalog.context.writable_storage.values():
        if not isinstance(storage, SQLStorage) or storage.dialect != "duckdb":
            continue
        try:
            storage.connect().close()  # the storage keeps its own connection (and the file lock) open
        except Exception as err:
            holder = re.search(r"\(PID (\d+)\)", str(err))
            who = f"process {holder.group(1)}" if holder else "another process"
            path = storage.uri.removeprefix("duckdb:///")
            raise CatalogInUse(
                f"{path} is in use by {who} (another `ingester ingest-dir`, `watch` or `serve` on this catalog)"
            ) from None
