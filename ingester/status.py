"""The words for what became of a file or a run, in one place: pipeline, ledger, report, watch and CLI use these.

`Outcome` is what ingesting gave. The first five are what the ledger records and the report shows;
the others are told to the caller but never recorded (the file is looked at again on the next pass). `Verdict` is what validation says of a run
or a file. Both are `StrEnum`s: each member *is* its word, so it compares equal to the string, is
stored as the string and prints as it.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Outcome", "Verdict", "RECORDED", "RETRYABLE", "SUCCEEDED", "MISSING_FILES"]


class Outcome(StrEnum):
    """What became of a file or a run."""

    INGESTED = "ingested"
    """Written into Tiled now."""
    ALREADY_PRESENT = "already-present"
    """The same run is in Tiled already."""
    INCOMPLETE = "incomplete"
    """No stop document yet: looked at again when the file changes."""
    REFUSED = "refused"
    """The content is wrong, or conflicts with Tiled: a retry cannot fix it, a new file can."""
    FAILED = "failed"
    """Tiled, the network or the disk failed: a retry may succeed."""

    UNCHANGED = "unchanged"
    """Not looked at: the ledger settled it with this size and mtime (or content)."""
    CLAIMED_ELSEWHERE = "claimed-elsewhere"
    """Another live worker is working on it."""
    VALID = "valid"
    """A dry run found it would be written."""
    DEFERRED = "deferred"
    """One of several writer processes left it to the last pass in one process."""
    INTERRUPTED = "interrupted"
    """Not (wholly) looked at: the pass was stopped (a signal, or the target went away) before it."""
    IN_PROGRESS_ELSEWHERE = "in-progress-elsewhere"
    """Tiled holds the run without stop and it changed lately: another writer is still writing it."""


RECORDED = frozenset({Outcome.INGESTED, Outcome.ALREADY_PRESENT, Outcome.INCOMPLETE, Outcome.REFUSED, Outcome.FAILED})
"""What the ledger records; an unchanged file with any of these is not looked at again."""

RETRYABLE = (Outcome.FAILED, Outcome.REFUSED)
"""What `ingester status --failed` lists; `ingester retry` tries the failed ones again, the refused
ones only when asked (their content has not changed)."""

SUCCEEDED = frozenset({Outcome.INGESTED, Outcome.ALREADY_PRESENT})
"""The run (or every run of the file) is in Tiled."""

MISSING_FILES = "ingested without the external data of"
"""How the reason of an `ingested` run that left out keys with missing files begins (ledger, report)."""


class Verdict(StrEnum):
    """What validation says of a run, or of a file (its worst run, or a fault of its own)."""

    OK = "ok"
    INCOMPLETE = "incomplete"
    INVALID = "invalid"
