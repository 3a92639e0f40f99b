"""Moving an ingested run file out of the spool: the one way a source file is ever touched (`--move-done`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["move_done"]


def move_done(path: Path, folder: Path) -> Path:
    """Move an ingested file into `folder`, never overwriting (a numbered name instead), atomically
    when on the same filesystem (rename), else copy to a temporary name then rename."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    n = 1
    while target.exists():
        target = folder / f"{path.stem}.{n}{path.suffix}"
        n += 1
    try:
        os.link(path, target)  # fails if target exists: no overwrite, even in a race
        path.unlink()
    except OSError:
        partial = folder / f".{target.name}.partial"
        shutil.copy2(path, partial)
        os.replace(partial, target)
        path.unlink()
    return target
