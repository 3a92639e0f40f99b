"""Where the bundled fixtures are, and what `fixtures/expected.json` says of each."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["REPO", "FIXTURES", "EXPECTED", "good_uids"]

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


def good_uids() -> set[str]:
    """The uids of the good runs the `spool` fixture holds."""
    uids = set()
    for name in ("scan_baseline.jsonl", "count_event_page.jsonl", "blob_count.jsonl"):
        uids.add(EXPECTED[f"good/{name}"]["uid"])
    uids |= {run["uid"] for run in EXPECTED["good/two_runs.jsonl"]["run_details"]}
    return uids
