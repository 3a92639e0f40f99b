"""A databroker-pack folder, written run by run: what `ingester export` leaves, and how it resumes.

```
DEST/
  documents/<start uid>.jsonl | .msgpack     the run's documents (suitcase-jsonl, or suitcase-msgpack)
  external_files/<id>/...                     copies of the external files (--copy-external)
  external_files_manifest_<id>.txt            the files under each root id (copies, or the originals)
  documents_manifest.txt                      the documents files
  SHA256SUMS                                  sha256sum lines of every file in the pack, paths relative to it
  catalog.yml                                 databroker-pack's catalog file: written last
  .export/<start uid>.json                    what was written for each run (resuming; readers ignore it)
```

A root is the folder of an external node's files; its id is 32 hex digits of the sha256 of its
path, so a folder shared by many runs is copied once under one id. The documents keep the original
URIs; `catalog.yml`'s `root_map` maps each original root to `external_files/<id>` (relative to the
pack), or to itself without copies. A run is written to temporary names and renamed, and its record
comes last, so a run is either exported (its record names files whose hashes match) or not at all;
the pack's shared files are rewritten from the records at the end of every export, `catalog.yml`
last, and removed first: a folder without `catalog.yml` is an unfinished export.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FORMATS", "Pack", "RunRecord", "file_sha256", "root_id"]

FORMATS = {"jsonl": "bluesky-jsonl-catalog", "msgpack": "bluesky-msgpack-catalog"}
_BLOCK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def root_id(root: str) -> str:
    """The 32-hex id of an original root, as databroker-pack names the folders of its copies."""
    return hashlib.sha256(root.encode()).hexdigest()[:32]


@dataclass
class RunRecord:
    """What one run put in the pack: its documents file and the external files, each with its sha256.

    `files` maps a path relative to the pack (a copy) or an absolute one (not copied) to its hash;
    `roots` maps each original root to its id."""

    uid: str
    documents: str
    documents_sha256: str
    files: dict[str, str] = field(default_factory=dict)
    roots: dict[str, str] = field(default_factory=dict)
    copied: bool = True

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1, sort_keys=True)


class Pack:
    """The pack folder `root`, its documents in `format` ("jsonl" or "msgpack")."""

    def __init__(self, root: Path, format: str = "jsonl", *, copy_external: bool = True):
        self.root = root.absolute()
        self.format = format
        self.copy_external = copy_external

    @property
    def catalog_file(self) -> Path:
        return self.root / "catalog.yml"

    @property
    def records_dir(self) -> Path:
        return self.root / ".export"

    def begin(self) -> None:
        """Make the folder an unfinished export (its catalog.yml goes until `finish`)."""
        (self.root / "documents").mkdir(parents=True, exist_ok=True)
        self.records_dir.mkdir(exist_ok=True)
        self.catalog_file.unlink(missing_ok=True)

    def documents_path(self, uid: str) -> Path:
        return self.root / "documents" / f"{uid}.{self.format}"

    def record(self, uid: str) -> RunRecord | None:
        path = self.records_dir / f"{uid}.json"
        try:
            return RunRecord(**json.loads(path.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def verified(self, uid: str) -> bool:
        """Whether the run is in the pack as this export would write it, every file's hash checked."""
        record = self.record(uid)
        if record is None or record.copied != self.copy_external:
            return False
        if record.documents != str(self.documents_path(uid).relative_to(self.root)):
            return False
        expected = {record.documents: record.documents_sha256, **record.files}
        for name, digest in expected.items():
            path = self.root / name
            if not path.is_file() or file_sha256(path) != digest:
                return False
        return True

    def copy_file(self, source: Path, root: str) -> tuple[str, str]:
        """Copy `source` (under the original `root`) into the pack, unless an identical copy is there;
        its path relative to the pack and its sha256. Without copies: its own path and hash."""
        digest = file_sha256(source)
        if not self.copy_external:
            return str(source), digest
        relative = Path("external_files") / root_id(root) / source.relative_to(root)
        target = self.root / relative
        if not (target.is_file() and file_sha256(target) == digest):
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.part")
            shutil.copyfile(source, partial)
            if file_sha256(partial) != digest:
                partial.unlink()
                raise OSError(f"{source} changed while it was copied")
            partial.replace(target)
        return str(relative), digest

    def save_record(self, record: RunRecord) -> None:
        partial = self.records_dir / f".{record.uid}.json.part"
        partial.write_text(record.to_json())
        partial.replace(self.records_dir / f"{record.uid}.json")

    def records(self) -> list[RunRecord]:
        found = (self.record(path.stem) for path in sorted(self.records_dir.glob("*.json")))
        return [record for record in found if record is not None]

    def finish(self) -> None:
        """Write the manifests, SHA256SUMS and, last, catalog.yml, from every run's record."""
        records = self.records()
        roots: dict[str, str] = {}
        files: dict[str, set[str]] = {}
        sums: dict[str, str] = {}
        for record in records:
            roots.update(record.roots)
            sums[record.documents] = record.documents_sha256
            for name, digest in record.files.items():
                for root, ident in record.roots.items():
                    if name.startswith(f"external_files/{ident}/") or name.startswith(f"{root}/"):
                        files.setdefault(ident, set()).add(name)
                if not os.path.isabs(name):
                    sums[name] = digest
        for old in self.root.glob("external_files_manifest_*.txt"):
            old.unlink()
        for ident, names in files.items():
            _write_lines(self.root / f"external_files_manifest_{ident}.txt", sorted(names))
        _write_lines(self.root / "documents_manifest.txt", sorted(r.documents for r in records))
        _write_lines(self.root / "SHA256SUMS", [f"{sums[name]}  {name}" for name in sorted(sums)])
        self._write_catalog(roots)

    def _write_catalog(self, roots: dict[str, str]) -> None:
        import yaml

        mapping = {root: (f"external_files/{ident}" if self.copy_external else root) for root, ident in roots.items()}
        glob = f"documents/*.{self.format}"
        catalog = {
            "sources": {
                "packed_catalog": {
                    "driver": FORMATS[self.format],
                    "args": {"paths": [str(self.root / glob)], "root_map": mapping},
                    "metadata": {
                        "generated_by": {"library": "bluesky-ingester"},
                        "relative_paths": [f"./{glob}"],
                    },
                }
            }
        }
        partial = self.root / ".catalog.yml.part"
        partial.write_text(yaml.safe_dump(catalog, sort_keys=True))
        partial.replace(self.catalog_file)


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    partial = path.with_name(f".{path.name}.part")
    text = "".join(f"{line}\n" for line in lines)
    partial.write_text(text)
    partial.replace(path)
