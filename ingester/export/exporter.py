"""Exporting runs from a target into a pack: choosing the runs, and writing each one whole.

`select_runs` picks start uids from the catalog (given uids, a start-time window, a limit);
`export_runs` writes each into the `Pack`, skipping a run already exported and verified, and says
what became of each (`RunExport`). A run whose external file is missing or unreadable is `refused`
naming the file; Tiled or the disk failing is `failed`. Nothing here parses arguments or prints.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ingester.export.catalog_read import read_run_in_catalog
from ingester.export.documents import RunTree, external_nodes, left_out_keys, read_run, run_documents
from ingester.export.pack import Pack, RunRecord, file_sha256
from ingester.status import Outcome
from ingester.target.embedded import EmbeddedNode

__all__ = [
    "EXPORTED",
    "ALREADY_EXPORTED",
    "MissingRun",
    "RunExport",
    "Unexportable",
    "export_runs",
    "select_runs",
    "write_documents",
]

EXPORTED = "exported"
ALREADY_EXPORTED = "already-exported"


@dataclass
class RunExport:
    """What became of one run: `status` (exported, already-exported, refused, failed, interrupted)."""

    uid: str
    status: str
    reason: str | None = None
    events: int = 0
    files: int = 0
    seconds: float = 0.0


class MissingRun(LookupError):
    """A uid asked for is not in the catalog."""


class Unexportable(Exception):
    """The run cannot be exported as it is (an external file missing or unreadable): refused."""


def select_runs(
    root: Any,
    uids: Iterable[str] = (),
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[str]:
    """The start uids to export: `uids` if given (each must be in the catalog), else every run, in the
    catalog's order; then only those started in [since, until), and at most `limit` of them."""
    from tiled.queries import Key

    wanted = list(dict.fromkeys(uids))
    catalog = root
    if since is not None:
        catalog = catalog.search(Key("start.time") >= since.timestamp())
    if until is not None:
        catalog = catalog.search(Key("start.time") < until.timestamp())
    if wanted:
        missing = _missing(root, wanted)
        if missing:
            raise MissingRun(f"not in the catalog: {', '.join(missing)}")
        if since is not None or until is not None:
            inside = set(catalog)
            wanted = [uid for uid in wanted if uid in inside]
    else:
        wanted = list(catalog)
    return wanted[:limit] if limit is not None else wanted


# Uids asked for in one request: 100 (~4 kB of the URL) stay well under the URL length servers accept.
_UIDS_A_REQUEST = 100


def _missing(root: Any, wanted: list[str]) -> list[str]:
    """The uids of `wanted` that are not in the catalog, asked for a hundred at a time: `uid in root`
    is a request a uid (22 ms each, 22 s for a list of 1,000), 100 uids at once took 0.03 s."""
    from tiled.queries import KeysFilter

    present: set[str] = set()
    for first in range(0, len(wanted), _UIDS_A_REQUEST):
        present.update(root.search(KeysFilter(wanted[first : first + _UIDS_A_REQUEST])))
    return [uid for uid in wanted if uid not in present]


def write_documents(documents: Iterable[tuple[str, dict]], path: Path, format: str) -> int:
    """Write `documents` into `path` (suitcase-jsonl lines, or suitcase-msgpack), through a partial
    file renamed at the end; the number of events written."""
    partial = path.with_name(f".{path.name}.part")
    events = 0
    with open(partial, "wb") as fh:
        write = _writer(fh, format)
        for name, doc in documents:
            if name == "event_page":
                events += len(doc["seq_num"])
            write([name, doc])
    partial.replace(path)
    return events


def _writer(fh: Any, format: str) -> Callable[[list], None]:
    if format == "msgpack":
        import msgpack
        import msgpack_numpy

        packer = msgpack.Packer(default=msgpack_numpy.encode, use_bin_type=True)
        return lambda item: fh.write(packer.pack(item))
    import io

    import jsonlines

    text = io.TextIOWrapper(fh, encoding="utf-8", newline="\n", write_through=True)
    return jsonlines.Writer(text, flush=False).write


def export_runs(
    root: Any,
    uids: list[str],
    pack: Pack,
    *,
    on_run: Callable[[RunExport], None] = lambda outcome: None,
    stop: threading.Event | None = None,
) -> Iterator[RunExport]:
    """Export each run of `uids` from `root` into `pack`. `root` is a tiled client of the catalog, or
    the embedded catalog's `EmbeddedNode`, whose runs are read through its catalog adapter without
    HTTP (ingester.export.catalog_read). The pack's shared files and catalog.yml are written once
    every run was looked at (also when some were refused or failed, not when stopped). A run of a
    target that went away raises."""
    pack.begin()
    stopped = False
    for uid in uids:
        if stop is not None and stop.is_set():
            stopped = True
            outcome = RunExport(uid, Outcome.INTERRUPTED)
        else:
            outcome = export_run(root, uid, pack)
        on_run(outcome)
        yield outcome
    if not stopped:
        pack.finish()


def export_run(root: Any, uid: str, pack: Pack) -> RunExport:
    began = time.monotonic()
    if pack.verified(uid):
        return RunExport(uid, ALREADY_EXPORTED, seconds=time.monotonic() - began)
    try:
        tree = read_run_in_catalog(root, uid) if isinstance(root, EmbeddedNode) else read_run(root, uid)
        files, roots = _copy_external(tree, pack)
        path = pack.documents_path(uid)
        events = write_documents(run_documents(tree), path, pack.format)
    except Unexportable as err:
        return RunExport(uid, Outcome.REFUSED, reason=str(err), seconds=time.monotonic() - began)
    except Exception as err:  # noqa: BLE001 - Tiled or the disk failed: said, and the next run tried
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        return RunExport(uid, Outcome.FAILED, reason=reason, seconds=time.monotonic() - began)
    record = RunRecord(
        uid=uid,
        documents=str(path.relative_to(pack.root)),
        documents_sha256=file_sha256(path),
        files=files,
        roots=roots,
        copied=pack.copy_external,
    )
    pack.save_record(record)
    left_out = left_out_keys(tree.metadata)
    note = f"without the data keys left out at its ingest (files missing): {', '.join(left_out)}" if left_out else None
    return RunExport(uid, EXPORTED, note, events=events, files=len(files), seconds=time.monotonic() - began)


def _copy_external(tree: RunTree, pack: Pack) -> tuple[dict[str, str], dict[str, str]]:
    """Copy (or list) every external file of the run; raise `Unexportable` naming a file that is not
    there or cannot be read."""
    from ingester.export.pack import root_id

    files: dict[str, str] = {}
    roots: dict[str, str] = {}
    for node in external_nodes(tree):
        paths = [Path(p) for p in node.paths()]
        root = str(paths[0].parent)
        for path in paths:
            if not path.is_file() or not os.access(path, os.R_OK):
                raise Unexportable(f"external file of {node.stream}/{node.key} is missing or unreadable: {path}")
            if str(path.parent) != root:
                root = _common_root(root, str(path.parent))
        roots[root] = root_id(root)
        for path in paths:
            name, digest = pack.copy_file(path, root)
            files[name] = digest
    return files, roots


def _common_root(one: str, other: str) -> str:
    return os.path.commonpath([one, other])
