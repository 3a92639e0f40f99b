"""The path rules of one run file: the batch's, plus those of the databroker-pack it belongs to.

A document file of a pack (`ingester.read.pack`) has its external files where the pack's root map
says (relative values against the pack's own folder, wherever it now is), then where the user's
`--root-map`/`--data-root` say; and the pack's `SHA256SUMS`, when it has one, are checked before a
run is written. Any other file keeps the batch's rules as they are.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ingester.config import PathRules
from ingester.read.pack import pack_of

__all__ = ["rules_for_file"]


def rules_for_file(rules: PathRules, path: Path) -> PathRules:
    """`rules` with the root map and checksums of the pack `path` is a document file of, if any."""
    pack = pack_of(path)
    if pack is None:
        return rules
    return dataclasses.replace(rules, pack_root_map=pack.root_map, checksums=pack.checksums)
