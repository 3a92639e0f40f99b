"""databroker-pack folders: what a pack's `catalog.yml`, manifests and `SHA256SUMS` say it holds.

A databroker-pack folder is recognised by its `catalog.yml`: one source whose driver is
`bluesky-msgpack-catalog` or `bluesky-jsonl-catalog`, with

- `metadata.relative_paths`: the globs of its document files, relative to the pack (e.g.
  `./documents/*.msgpack`); `args.paths` holds the same globs made absolute on the machine that
  wrote the pack, used only when there are no relative ones;
- `args.root_map`: each Resource `root` as the documents hold it (the original absolute root, or a
  32-hex id databroker-pack wrote in its place) to where its files are: `external_files/<id>`
  relative to the pack, or an absolute path. Relative values are taken against the pack's own
  folder, wherever it is now, so a moved pack still reads.

`documents_manifest.txt` and `external_files_manifest_<id>.txt` list what the pack should hold
(relative to the pack, or absolute); `SHA256SUMS` (the output of `sha256sum`, paths relative to the
pack) the content of its files. This module reads those files and never a document or a data file;
the pipeline applies the root map (`PathRules.pack_root_map`) and the checksums.
"""

from __future__ import annotations

import fnmatch
import functools
import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ingester.logs import logger

__all__ = [
    "PACK_DRIVERS",
    "CATALOG_FILE",
    "CHECKSUMS_FILE",
    "Pack",
    "read_pack",
    "find_pack",
    "pack_of",
    "missing_files",
]

PACK_DRIVERS = ("bluesky-msgpack-catalog", "bluesky-jsonl-catalog")
CATALOG_FILE = "catalog.yml"
CHECKSUMS_FILE = "SHA256SUMS"
_DOCUMENTS_MANIFEST = "documents_manifest.txt"
_EXTERNAL_MANIFESTS = "external_files_manifest_*.txt"


@dataclass(frozen=True)
class Pack:
    """One databroker-pack folder, as its own files describe it (every path absolute)."""

    folder: Path
    driver: str
    document_globs: tuple[str, ...]
    root_map: tuple[tuple[str, str], ...]  # root as in the documents -> absolute folder
    listed: tuple[tuple[Path, str], ...] = ()  # (file the pack should hold, the manifest listing it)
    checksums: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # (absolute path, sha256 hex)

    def document_files(self) -> list[Path]:
        """The pack's document files: those its globs find, and those its manifest lists (found or not)."""
        found = {Path(p) for pattern in self.document_globs for p in glob.glob(pattern) if os.path.isfile(p)}
        found |= {path for path, manifest in self.listed if manifest == _DOCUMENTS_MANIFEST}
        return sorted(found)


class NotAPack(Exception):
    """The folder's catalog.yml is not a databroker-pack catalog (or cannot be read): the reason."""


def read_pack(folder: Path) -> Pack | None:
    """The pack in `folder`, None when it has no `catalog.yml`. Raises `NotAPack` when its catalog.yml
    names no databroker-pack source or cannot be read."""
    folder = Path(os.path.abspath(folder))
    catalog = folder / CATALOG_FILE
    if not catalog.is_file():
        return None
    try:
        content = yaml.safe_load(catalog.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise NotAPack(f"{catalog}: cannot be read: {err}") from None
    sources = content.get("sources") if isinstance(content, dict) else None
    packed = [s for s in (sources or {}).values() if isinstance(s, dict) and s.get("driver") in PACK_DRIVERS]
    if not packed:
        raise NotAPack(f"{catalog}: no source with driver {' or '.join(PACK_DRIVERS)}")
    source = packed[0]
    args, metadata = source.get("args") or {}, source.get("metadata") or {}
    relative = [str(p) for p in metadata.get("relative_paths") or []]
    globs = [os.path.normpath(folder / p) for p in relative] or [str(p) for p in _listed(args.get("paths"))]
    roots = [(str(root), os.path.normpath(folder / str(where))) for root, where in (args.get("root_map") or {}).items()]
    # An id in place of a root is the first component of a relative location (a Resource's root);
    # a StreamResource's file URI can only hold an absolute path, so there it is `/<id>/...`.
    roots += [("/" + root, where) for root, where in roots if not root.startswith("/")]
    root_map = tuple((root, where) for root, where in roots if root.strip("/"))
    return Pack(folder, source["driver"], tuple(globs), root_map, _manifests(folder), _checksums(folder))


def _listed(value) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _manifests(folder: Path) -> tuple[tuple[Path, str], ...]:
    """Every file a manifest of the pack lists, with the manifest's name; relative entries under the pack."""
    listed = []
    for manifest in [folder / _DOCUMENTS_MANIFEST, *sorted(folder.glob(_EXTERNAL_MANIFESTS))]:
        try:
            lines = manifest.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            continue
        # An absolute entry is a file of the writing machine (a pack without copies): not the pack's to hold.
        listed += [(folder / e, manifest.name) for line in lines if (e := line.strip()) and not e.startswith("/")]
    return tuple(listed)


def _checksums(folder: Path) -> tuple[tuple[str, str], ...]:
    """`SHA256SUMS` as (absolute path, hex digest); `sha256sum`'s binary marker `*` is allowed."""
    try:
        lines = (folder / CHECKSUMS_FILE).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return ()
    sums = []
    for line in lines:
        digest, _, name = line.strip().partition(" ")
        name = name.lstrip(" ").removeprefix("*")
        if digest and name:
            sums.append((os.path.normpath(folder / name), digest.lower()))
    return tuple(sums)


def missing_files(pack: Pack) -> list[tuple[Path, str]]:
    """The files a manifest lists that the pack does not hold: (path, manifest)."""
    return [(path, manifest) for path, manifest in pack.listed if not path.is_file()]


@functools.lru_cache(maxsize=256)
def _pack_in(folder: Path, version: tuple[int, int]) -> Pack | None:
    """The pack of `folder` as its catalog.yml of this (mtime, size) describes it."""
    try:
        return read_pack(folder)
    except NotAPack as err:
        logger.warning("{}: not read as a databroker-pack folder", err)
        return None


def pack_of(path: Path) -> Pack | None:
    """The pack a document file belongs to: the nearest folder above it with a databroker-pack
    catalog.yml whose globs take the file (cached per folder). None for any other file."""
    path = Path(os.path.abspath(path))
    for folder in path.parents:
        try:
            found = os.stat(folder / CATALOG_FILE)
        except OSError:
            continue
        pack = _pack_in(folder, (found.st_mtime_ns, found.st_size))
        if pack is not None:
            return pack if any(fnmatch.fnmatch(str(path), g) for g in pack.document_globs) else None
    return None


def pack_takes(path: Path) -> bool:
    """False for a file inside a databroker-pack folder that is not one of its documents (an external
    file named like a run file); True for a pack's document and for any file outside a pack."""
    path = Path(os.path.abspath(path))
    if any(os.path.isfile(folder / CATALOG_FILE) for folder in path.parents):
        return pack_of(path) is not None or not any(find_pack(folder) for folder in path.parents)
    return True


def find_pack(folder: Path) -> Pack | None:
    """The pack in `folder` (None when it holds none, or a catalog.yml that is no pack's, with a warning)."""
    try:
        found = os.stat(Path(folder) / CATALOG_FILE)
    except OSError:
        return None
    return _pack_in(Path(os.path.abspath(folder)), (found.st_mtime_ns, found.st_size))
