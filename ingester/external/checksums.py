"""Verify a run's external files against the checksums a pack carries (`SHA256SUMS`), before writing.

A databroker-pack folder (or an `ingester export`) may list the SHA-256 of every file it holds. Each
file a run references that is listed there is read and hashed once resolve has placed it; a file
whose content differs refuses the run, naming the file, so that nothing of a run whose data was
damaged on the way is written. A file the list does not name is not read. Nothing here writes.
"""

from __future__ import annotations

import hashlib
import os

from ingester.config import PathRules
from ingester.external.consolidate import source_problem
from ingester.runs import NormalizedRun

__all__ = ["verify_checksums"]


def verify_checksums(run: NormalizedRun, rules: PathRules) -> None:
    """Raise `IngestError` for the first external file of `run` whose SHA-256 is not the one listed."""
    if not rules.checksums:
        return
    listed = dict(rules.checksums)
    seen: set[str] = set()
    for source in run.external.values():
        for path in source.local_files:
            key = os.path.normpath(path)
            expected = listed.get(key)
            if expected is None or key in seen:
                continue
            seen.add(key)
            with open(path, "rb") as fh:
                actual = hashlib.file_digest(fh, "sha256").hexdigest()
            if actual != expected:
                reason = (
                    f"external file does not match its SHA256SUMS entry (sha256 {actual}, listed {expected}): {path}"
                )
                raise source_problem(run, source, reason)
