"""Looking into an embedded catalog folder from outside, the way an operator would check it.

`run_state` reads a run's `_ingest.state` straight from `catalog.db` (read-only, safe while an
ingester writes); `storage_rows` counts the rows of every table in the folder's DuckDB files (only
when no process holds them), to show that removing or replacing a run leaves no orphan rows.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

__all__ = ["run_state", "storage_rows"]


def run_state(catalog: Path, uid: str) -> str | None:
    """The run's `_ingest.state` ("writing", "complete"), "no stop" for a run without one, or None."""
    database = catalog / "catalog.db"
    if not database.is_file():
        return None
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
            row = db.execute("SELECT metadata FROM nodes WHERE key = ?", (uid,)).fetchone()
    except sqlite3.Error:
        return None  # being created
    if row is None:
        return None
    metadata = json.loads(row[0])
    return metadata.get("_ingest", {}).get("state") or ("no stop" if "stop" not in metadata else None)


def storage_rows(catalog: Path) -> int:
    """Rows in all the tables of the catalog's DuckDB files."""
    import duckdb

    total = 0
    for path in sorted(catalog.glob("storage*.duckdb")):
        with duckdb.connect(str(path), read_only=True) as db:
            tables = db.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'table_%'"
            ).fetchall()
            for (table,) in tables:
                total += db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    return total
