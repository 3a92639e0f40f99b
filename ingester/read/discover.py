"""Discover stage: find the run files under the paths a user names.

A file named explicitly is always taken. Inside a directory (searched recursively, in sorted
order so runs are reported stably) a run file is one whose name ends in `.jsonl`, `.ndjson` or
`.json`, optionally followed by `.gz`; hidden files and folders and temporary files (`*.tmp`,
`*.part`, `*~`) are left alone, as are external data files (`.h5`, `.tiff`, ...). This stage
never opens a file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["RUN_FILE_SUFFIXES", "is_run_file_name", "find_run_files"]

RUN_FILE_SUFFIXES = (".jsonl", ".ndjson", ".json")
_TEMPORARY_SUFFIXES = (".tmp", ".part", ".swp", "~")


def is_run_file_name(name: str) -> bool:
    """Whether a file name looks like a run file (and not like a temporary or hidden file)."""
    if name.startswith(".") or name.endswith(_TEMPORARY_SUFFIXES):
        return False
    if name.endswith(".gz"):
        name = name[:-3]
    return name.endswith(RUN_FILE_SUFFIXES)


def find_run_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Yield each run file once: named files as given, directories searched recursively."""
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = _walk(path)
        else:
            found = iter([path])
        for file in found:
            key = file.absolute()
            if key not in seen:
                seen.add(key)
                yield file


def _walk(top: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(top, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if is_run_file_name(name):
                yield Path(folder) / name
