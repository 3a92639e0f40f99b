"""`ingest-dir`: run the pipeline over every run file under some paths, and sum up what happened.

Opens the target once (the embedded catalog, or a Tiled server), feeds each discovered file to
`pipeline.ingest_file`, reports each refused or failed run as `path:line: <doc> <uid> : reason`
and ends with one summary line. It never prints an API key.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ingester.config import Settings
from ingester.discover import find_run_files
from ingester.pipeline import FAILED, INCOMPLETE, REFUSED, WRITTEN, RunOutcome, ingest_file
from ingester.resolve import PathRules

__all__ = ["Summary", "ingest_paths", "path_rules", "readable_roots"]


@dataclass
class Summary:
    """Counts by status over all runs, and every outcome in order."""

    outcomes: list[RunOutcome] = field(default_factory=list)
    target: str = ""

    @property
    def counts(self) -> Counter:
        return Counter(o.status for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        return 1 if self.counts[REFUSED] or self.counts[FAILED] else 0

    def line(self) -> str:
        c = self.counts
        runs = sum(1 for o in self.outcomes if o.uid)
        return (
            f"{runs} run{'s' if runs != 1 else ''} in {len({o.path for o in self.outcomes})} files: "
            f"{c[WRITTEN]} ingested, {c['already-present']} already present, {c[INCOMPLETE]} incomplete (skipped), "
            f"{c[REFUSED]} refused, {c[FAILED]} failed -> {self.target}"
        )


def path_rules(settings: Settings) -> PathRules:
    return PathRules(
        data_roots=tuple(Path(p).absolute() for p in settings.data_roots),
        root_map=tuple((old, str(Path(new).absolute())) for old, new in settings.root_map),
        server_paths=tuple(settings.server_paths),
    )


def readable_roots(settings: Settings, paths: Iterable[Path]) -> list[Path]:
    """Folders Tiled may read registered files from: data roots, root-map targets, or the run files' folders."""
    roots = [Path(p).absolute() for p in settings.data_roots]
    roots += [Path(new).absolute() for _, new in settings.root_map]
    if not settings.data_roots:
        roots += [(p if p.is_dir() else p.parent).absolute() for p in paths]
    return list(dict.fromkeys(roots))


def ingest_paths(paths: list[Path], settings: Settings, *, echo: Callable[[str], None] = print) -> Summary:
    from ingester.target import open_target

    rules = path_rules(settings)
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    summary = Summary()
    with open_target(
        tiled_uri=settings.tiled_uri,
        api_key=api_key,
        catalog_dir=settings.catalog,
        readable_roots=readable_roots(settings, paths),
    ) as target:
        summary.target = target.description
        for path in find_run_files(paths):
            for outcome in ingest_file(path, target.root, rules, include_incomplete=settings.include_incomplete):
                summary.outcomes.append(outcome)
                if outcome.status in (REFUSED, FAILED):
                    for problem in outcome.problems[:5] or [outcome.reason]:
                        echo(str(problem))
    echo(summary.line())
    return summary
