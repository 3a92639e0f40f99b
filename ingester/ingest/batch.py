"""`ingest-dir` and `retry`: a `FileIngester` over many run files, safe to repeat, recorded in the ledger.

Files the ledger settled with their current size and mtime are told apart in one query
(`settled_by_ledger`), so a pass over a folder where nothing is new never opens the target. The
rest are processed by `jobs` threads (`run_batch`); the writes themselves go one at a time to an
SQLite-backed target, and two files holding the same run uid never write it at the same time
(`WriteGuards`). Files claimed by other workers are looked at again until those workers are done
with them (or their leases expired), so every file given ends with an outcome. What to show is the
caller's business (`on_file`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from ingester.config import Settings, ledger_url, load_settings, readable_roots, target_key
from ingester.ingest.files import BatchOptions, FileIngester
from ingester.ingest.guards import WAIT_LEASES
from ingester.ingest.outcomes import FileOutcome, Summary
from ingester.ingest.packs import pack_roots
from ingester.ledger.store import Ledger
from ingester.read.discover import find_run_files
from ingester.read.pack import pack_of
from ingester.status import Outcome

__all__ = ["select_files", "settled_by_ledger", "run_batch", "ingest_pending", "ingest_paths"]


def select_files(paths: Iterable[Path], options: BatchOptions) -> Iterator[Path]:
    """Discovered run files, newer than `since` (by mtime), at most `limit` of them."""
    taken = 0
    since = options.since.timestamp() if options.since else None
    for path in find_run_files(paths):
        if options.limit is not None and taken >= options.limit:
            return
        if since is not None:
            try:
                if path.stat().st_mtime < since:
                    continue
            except OSError:
                pass  # reported when it is processed
        taken += 1
        yield path


def settled_by_ledger(
    files: Iterable[Path], ledger: Ledger, options: BatchOptions
) -> tuple[list[FileOutcome], list[Path]]:
    """Split `files` into those the ledger settled with their current size and mtime (outcomes,
    already noted as seen) and those to look at, in one query: when nothing is new, the caller need
    not even open the target."""
    files = list(files)
    if options.force:
        return [], files
    stats = {}
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            continue  # FileIngester.process reports it
        stats[path] = (path, stat.st_size, stat.st_mtime_ns)
    settled = ledger.settled(stats.values())
    outcomes, pending = [], []
    for path in files:
        status = settled.get(os.path.abspath(path)) if path in stats else None
        if status is None or (status == Outcome.REFUSED and pack_of(path) is not None):
            pending.append(path)  # a refused pack document: FileIngester looks at when its catalog came
        else:
            reason = f"unchanged since it was {status}"
            outcomes.append(FileOutcome(path, Outcome.UNCHANGED, reason=reason, recorded=Outcome(status)))
    if outcomes and not options.dry_run:
        ledger.touch_all(outcome.path for outcome in outcomes)
    return outcomes, pending


def run_batch(
    files: Iterable[Path],
    ingester: FileIngester,
    *,
    target: str,
    on_file: Callable[[FileOutcome], None] = lambda outcome: None,
    settled: Iterable[FileOutcome] = (),
) -> Summary:
    """Process `files` with `ingester` on `settings.jobs` threads (0: one per core); `on_file` sees
    each outcome. `settled` are outcomes found beforehand (`settled_by_ledger`): they come first.

    When a run fails because the target is gone, the pass stops (`ingester.stop`): the files not
    begun are `interrupted`, not failed, and `summary.target_down` says why."""
    summary = Summary(target=target)
    started = time.perf_counter()
    files = list(files)
    for outcome in settled:
        summary.files.append(outcome)
        on_file(outcome)

    processed: list[FileOutcome] = []  # the outcomes of `files`, as they come

    def done(outcome: FileOutcome) -> None:
        if outcome.target_down and summary.target_down is None:  # the rest would fail the same way
            summary.target_down = next(run.reason for run in outcome.runs if run.target_down)
            ingester.stop.set()
        summary.files.append(outcome)
        processed.append(outcome)
        ingester.state = f"ingest-dir: {len(processed)} of {len(files)} files done"
        on_file(outcome)

    ingester.state = f"ingest-dir: 0 of {len(files)} files done"
    with ingester:
        _beat(ingester)
        try:
            _process_all(files, ingester, done)
        finally:
            if ingester.keeper is not None:
                summary.claim_seconds, summary.claim_calls = ingester.keeper.seconds, ingester.keeper.calls
                ingester.state = f"ingest-dir: finished, {len(processed)} of {len(files)} files done"
                _beat(ingester)
    summary.seconds = time.perf_counter() - started
    return summary


def _process_all(files: list[Path], ingester: FileIngester, done: Callable[[FileOutcome], None]) -> None:
    """Every file through `ingester.process`; those claimed elsewhere again, until their owners let
    go or `WAIT_LEASES` leases passed without anyone making progress."""
    settings = ingester.settings
    jobs = settings.jobs or os.cpu_count() or 1

    def one(path: Path) -> FileOutcome:
        try:
            outcome = ingester.process(path)
        except Exception as err:  # a bug or the ledger's database gone: report the file, go on
            return FileOutcome(path, Outcome.FAILED, reason=f"{type(err).__name__}: {err}")
        if outcome.target_down:  # at once, from this thread: no other file begins
            ingester.stop.set()
        return outcome

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="ingest") as pool:
        todo, deadline, pause = files, None, 0.1
        while todo:
            elsewhere = []
            for future in as_completed([pool.submit(one, path) for path in todo]):
                outcome = future.result()
                if outcome.status == Outcome.CLAIMED_ELSEWHERE and (deadline is None or time.monotonic() < deadline):
                    elsewhere.append(outcome.path)
                else:
                    done(outcome)
            if elsewhere and len(elsewhere) < len(todo):
                deadline, pause = None, 0.1  # others are making progress: keep waiting
            if elsewhere and deadline is None:
                deadline = time.monotonic() + WAIT_LEASES * settings.lease
            todo = sorted(elsewhere)
            if todo:
                time.sleep(pause)
                pause = min(pause * 2, settings.lease / 3)


def _beat(ingester: FileIngester) -> None:
    if ingester.keeper is None:
        return
    try:
        ingester.ledger.heartbeat(ingester.state)
    except Exception:  # a heartbeat is not worth failing the batch for
        pass


def ingest_pending(
    files: list[Path],
    ledger: Ledger,
    settings: Settings,
    options: BatchOptions,
    *,
    readable_roots: Iterable[Path] = (),
    on_file: Callable[[FileOutcome], None] = lambda outcome: None,
    settled: Iterable[FileOutcome] = (),
    stop: Any = None,
) -> Summary:
    """`files` (those the ledger did not settle) through one `FileIngester` into the target the
    settings name, opened only if there is a file to look at; `settled` come first in the summary.
    `stop` (an event): see `FileIngester`; once it is set no file is begun, and none is when it
    already is (the target is then not even opened)."""
    from ingester.target.targets import open_target

    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    opened = open_target(
        tiled_uri=settings.tiled_uri, api_key=api_key, catalog_dir=settings.catalog, readable_roots=readable_roots
    ) if files and not (stop is not None and stop.is_set()) else nullcontext()  # fmt: skip
    with opened as target:
        ingester = FileIngester(target.writer_root if target else None, ledger, settings, options, stop=stop)
        description = target.description if target else target_key(settings)
        return run_batch(files, ingester, target=description, on_file=on_file, settled=settled)


def ingest_paths(
    paths: Iterable[str | Path], settings: Settings | None = None, options: BatchOptions | None = None
) -> Summary:
    """`ingester ingest-dir PATHS` as a function, in this process: every run file found under `paths`
    ingested into the target of `settings` (default: as `load_settings()` finds them) and recorded
    in its ledger; the summary of every file's outcome."""
    settings = settings if settings is not None else load_settings()
    options = options or BatchOptions()
    paths = [Path(p) for p in paths]
    files = list(select_files(paths, options))
    with Ledger.open(ledger_url(settings), target_key(settings), command="ingest_paths") as ledger:
        settled, pending = settled_by_ledger(files, ledger, options)
        roots = [*readable_roots(settings, paths), *pack_roots(files)]
        return ingest_pending(pending, ledger, settings, options, readable_roots=roots, settled=settled)
