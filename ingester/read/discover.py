"""Discover stage: find the run files under the paths a user names.

A file named explicitly is always taken. Inside a directory (searched recursively, in sorted
order so runs are reported stably) a run file is one whose name ends in `.jsonl`, `.ndjson`,
`.json` or `.msgpack`, optionally followed by `.gz`; hidden files and folders and temporary files (`*.tmp`,
`*.part`, `*~`) are left alone, as are external data files (`.h5`, `.tiff`, ...); so are FIFOs,
sockets and devices, with a warning. In a databroker-pack folder (a `catalog.yml` naming a
databroker-pack driver, `ingester.read.pack`) only the pack's document files are taken, whatever
their names (`.msgpack` included). This stage never opens a run file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from ingester.logs import logger
from ingester.read.pack import Pack, find_pack, missing_files
from ingester.read.source import file_kind

__all__ = ["RUN_FILE_SUFFIXES", "is_run_file_name", "find_run_files", "pack_documents"]

RUN_FILE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".msgpack")
_TEMPORARY_SUFFIXES = (".tmp", ".part", ".swp", "~")


def is_run_file_name(name: str) -> bool:
    """Whether a file name looks like a run file (and not like a temporary or hidden file)."""
    if name.startswith(".") or name.endswith(_TEMPORARY_SUFFIXES):
        return False
    if name.endswith(".gz"):
        name = name[:-3]
    return name.endswith(RUN_FILE_SUFFIXES)


def find_run_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Yield each run file once: named files as given, directories searched recursively.

    What is neither a regular file nor a folder (a FIFO, a socket, a device) is skipped with a
    warning and never opened: reading a FIFO would wait for a writer forever. A named path that
    does not exist is yielded (whoever reads it says so)."""
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        try:
            mode = path.stat().st_mode
        except OSError:
            mode = None
        if mode is not None and stat.S_ISDIR(mode):
            found = _walk(path)
        elif mode is not None and file_kind(mode) is not None:
            _skip(path, file_kind(mode))
            continue
        else:
            found = iter([path])
        for file in found:
            key = file.absolute()
            if key not in seen:
                seen.add(key)
                yield file


def _walk(top: Path) -> Iterator[Path]:
    """Run files under `top`, in sorted order, not following links to folders (as os.walk). In a
    databroker-pack folder, its document files only (see `pack_documents`)."""
    pack = find_pack(top)
    if pack is not None:
        yield from pack_documents(pack)
        return
    try:
        entries = sorted(os.scandir(top), key=lambda entry: entry.name)
    except OSError:
        return
    folders = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            folders.append(entry)
        elif is_run_file_name(entry.name):
            if entry.is_file():
                yield Path(entry.path)
            elif (kind := _kind_of(entry)) is not None:
                _skip(Path(entry.path), kind)
    for folder in folders:
        yield from _walk(Path(folder.path))


def pack_documents(pack: Pack) -> list[Path]:
    """The document files of a pack, those its manifests list included; each file a manifest lists
    that the pack does not hold is named in a warning (a missing document is also reported by
    whoever reads it, a missing external file by the run that needs it)."""
    for path, manifest in missing_files(pack):
        logger.warning("{}: listed in {} but not in the pack", path, manifest)
    return pack.document_files()


def _kind_of(entry: os.DirEntry) -> str | None:
    try:
        return file_kind(entry.stat().st_mode)
    except OSError:
        return None  # a dangling link: nothing to read, nothing to say


def _skip(path: Path, kind: str) -> None:
    logger.warning("{}: skipped: {}, not a regular file", path, kind)
