"""The path rules of one run file: the batch's, plus those of the databroker-pack it belongs to.

A document file of a pack (`ingester.read.pack`) has its external files where the pack's root map
says (relative values against the pack's own folder, wherever it now is), then where the user's
`--root-map`/`--data-root` say; and the pack's `SHA256SUMS`, when it has one, are checked before a
run is written: the run file's own entry here, its external files' by `ingester.external.checksums`. Any other file keeps the batch's rules as they are.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from ingester.config import PathRules
from ingester.problems import Problem
from ingester.read.pack import CATALOG_FILE, pack_of
from ingester.read.source import Source

__all__ = ["rules_for_file", "document_mismatch", "pack_roots", "pack_changed_since"]


def rules_for_file(rules: PathRules, path: Path) -> PathRules:
    """`rules` with the root map and checksums of the pack `path` is a document file of, if any."""
    pack = pack_of(path)
    if pack is None:
        return rules
    return dataclasses.replace(rules, pack_root_map=pack.root_map, checksums=pack.checksums)


def pack_changed_since(path: Path, when: datetime | None) -> bool:
    """Whether `path` is a document file of a pack whose catalog.yml arrived or changed after `when`.

    A pack copied into a spool file by file may show its documents before its catalog.yml: they are
    read without its root map and refused. Once the catalog is there, they are worth reading again.
    The inode change time counts too: a copy that keeps the original mtime (`cp -p`, `rsync -a`)
    still changes it."""
    pack = pack_of(path)
    if pack is None or when is None:
        return False
    try:
        found = os.stat(pack.folder / CATALOG_FILE)
    except OSError:
        return False
    return datetime.fromtimestamp(max(found.st_mtime, found.st_ctime), UTC) > when


def pack_roots(files: Iterable[Path]) -> list[Path]:
    """The folders the root maps of the packs `files` belong to point at: Tiled must be allowed to read
    them (a pack without copies may point outside every folder the user named)."""
    roots: dict[Path, None] = {}
    for path in files:
        pack = pack_of(path)
        if pack is not None:
            roots.update((Path(where), None) for _, where in pack.root_map)
    return list(roots)


def document_mismatch(path: Path, source: Source | None, rules: PathRules) -> list[Problem]:
    """The run file itself against the pack's `SHA256SUMS` (the hash of the bytes just read): a
    problem when its entry differs, none when it matches, is not listed or was not read to the end."""
    listed = dict(rules.checksums).get(os.path.abspath(path))
    if listed is None or source is None:
        return []
    actual = source.digest.removeprefix("sha256:")
    if actual == listed:
        return []
    return [
        Problem(str(path), None, f"run file does not match its SHA256SUMS entry (sha256 {actual}, listed {listed})")
    ]
