"""What an ingester has done, as Prometheus metrics: `IngestMetrics`, counted from the outcomes it gives.

Counts come from `FileOutcome`s only, in the process that sees them all: `watch`'s worker, or the
parent of several writer processes (which sends it each outcome, `ingester.ingest.workers`), so
they stay right however many threads or processes wrote. The metrics live in a registry of their
own (not prometheus_client's global one), so two `IngestMetrics` in one process never mix.
Names follow log and file shippers (Vector, Fluent Bit): `ingester_<what>_total` for counters.
Nothing here serves HTTP or decides an outcome; the target is named without credentials.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from ingester import __version__
from ingester.ingest.outcomes import STAGES, FileOutcome, RunOutcome
from ingester.status import RECORDED, SUCCEEDED, Outcome

__all__ = ["IngestMetrics"]

# A small run takes ~0.15 s to write into the embedded catalog, a large one minutes.
_INGEST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, float("inf"))
# A watched run is readable ~1.3 s after its stop line; a catch-up after an outage, hours or days.
_LAG_BUCKETS = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86400.0, float("inf"))
# The run statuses shown from the start (at 0), so that a rate over them exists before the first one.
_RUN_STATUSES = (*sorted(RECORDED), Outcome.IN_PROGRESS_ELSEWHERE, Outcome.INTERRUPTED)


class IngestMetrics:
    """The ingester's metrics in a registry of their own; `count_file` adds one file's outcome.

    `target_kind` (`embedded` or `tiled`) and `target` (a folder, or a URI without credentials) go
    into the info metric `ingester_info`, with the version.
    """

    def __init__(self, *, target_kind: str, target: str):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.files_seen = Counter("ingester_files_seen", "Run files looked at (unchanged ones included)", registry=r)
        self.runs = Counter("ingester_runs", "Runs by what became of them", ["status"], registry=r)
        self.documents = Counter("ingester_documents", "Documents read, of every run", registry=r)
        self.bytes_read = Counter("ingester_bytes_read", "Bytes of run files read", registry=r)
        self.errors = Counter("ingester_errors", "Runs refused or failed, by the stage that found why", ["stage"], registry=r)  # fmt: skip
        self.retries = Counter("ingester_retries", "Files tried again after they failed", registry=r)
        self.ingest_seconds = Histogram(
            "ingester_ingest_seconds", "Seconds to resolve and write one run", buckets=_INGEST_BUCKETS, registry=r
        )
        self.lag_seconds = Histogram(
            "ingester_lag_seconds", "Seconds from a run's stop document time to readable in Tiled",
            buckets=_LAG_BUCKETS, registry=r,
        )  # fmt: skip
        self.pending_runs = Gauge("ingester_pending_runs", "Run files waiting to be ingested", registry=r)
        self.last_success = Gauge(
            "ingester_last_success_timestamp_seconds", "When a run was last ingested or found present", registry=r
        )
        Info("ingester", "The ingester's version and target", registry=r).info(
            {"version": __version__, "target_kind": target_kind, "target": target}
        )
        for status in _RUN_STATUSES:
            self.runs.labels(status=str(status))
        for stage in STAGES:
            self.errors.labels(stage=stage)

    def count_file(self, outcome: FileOutcome) -> None:
        """One file's outcome and its runs'."""
        self.files_seen.inc()
        if outcome.bytes_read:
            self.bytes_read.inc(outcome.bytes_read)
        if outcome.retry:
            self.retries.inc()
        if not outcome.runs and outcome.status in (Outcome.FAILED, Outcome.REFUSED):
            self.errors.labels(stage="read").inc()  # the file itself: unreadable, or no run in it
        for run in outcome.runs:
            self._count_run(run)

    def _count_run(self, run: RunOutcome) -> None:
        self.runs.labels(status=str(run.status)).inc()
        self.documents.inc(run.documents)
        if run.status in (Outcome.REFUSED, Outcome.FAILED):
            self.errors.labels(stage=run.stage if run.stage in STAGES else "write").inc()
        if run.status in SUCCEEDED:
            self.last_success.set(time.time())
        if run.status == Outcome.INGESTED:
            self.ingest_seconds.observe(run.seconds)
            if run.lag is not None:
                self.lag_seconds.observe(max(run.lag, 0.0))

    def count_error(self, stage: str) -> None:
        """A fault outside any run's outcome (the ledger failing while a file was recorded)."""
        self.errors.labels(stage=stage).inc()

    def pending_from(self, pending: Callable[[], float]) -> None:
        """`ingester_pending_runs` is what `pending()` says whenever it is scraped."""
        self.pending_runs.set_function(pending)

    def text(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
