"""What a good fixture should read back as: runs, per-stream row counts, external keys and real file shapes.

Computed from the documents and the files on disk (never typed by hand), so expected.json cannot
drift from what the script wrote. Also renders fixtures/README.md from the same entries.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

import h5py
import numpy as np
from fixture_io import Docs

__all__ = ["summarize_runs", "render_readme"]

FOREIGN_ROOT = "/nsls2/data/tst/proposals/2024"


def _local_path(location: str, run_dir: Path, root_map: dict[str, Path]) -> Path | None:
    """Where a (relative or mapped absolute) location lives in the fixtures tree, or None if outside."""
    location = location.removeprefix("file://localhost").removeprefix("file://")
    if not location.startswith("/"):
        return run_dir / location
    for prefix, target in root_map.items():
        if location.startswith(prefix + "/"):
            return target / location[len(prefix) + 1 :]
    return None


def _file_shape(path: Path | None, fixtures: Path, spec: str, dataset: str | None) -> list[int] | None:
    """The shape the external file really holds; None when it is missing or not safely inside fixtures/."""
    if path is None:
        return None
    if spec == "NPY_SEQ":
        files = sorted(path.parent.glob(f"{path.name}_*.npy"))
        return [len(files), *np.load(files[0]).shape] if files else None
    if path.is_symlink() or not path.is_file() or not path.resolve().is_relative_to(fixtures.resolve()):
        return None
    with h5py.File(path, "r") as f:
        return list(f[dataset].shape)


def summarize_runs(docs: Docs, run_dir: Path, fixtures: Path, root_map: dict[str, Path] | None = None) -> list[dict]:
    """One summary a run: uid, rows per stream, external keys with declared and real shapes."""
    root_map = root_map or {}
    runs: list[dict[str, Any]] = []
    for name, doc in docs:
        if name == "start":
            run = {"uid": doc["uid"], "streams": {}, "external_keys": {}}
            descriptors, resources, datums = {}, {}, {}
            # A stream's rows are its events, or as many as its StreamDatums cover (a fly scan has no events).
            event_rows, datum_rows = Counter(), Counter()
            runs.append(run)
        elif name == "descriptor":
            descriptors[doc["uid"]] = doc
            run["streams"].setdefault(doc["name"], 0)
        elif name in ("event", "event_page"):
            stream = descriptors[doc["descriptor"]]["name"]
            rows = len(doc["seq_num"]) if name == "event_page" else 1
            event_rows[stream] += rows
            run["streams"][stream] = max(event_rows[stream], datum_rows[stream])
            for key, value in doc["data"].items():
                value = value[0] if name == "event_page" else value
                if key in run["external_keys"] or not isinstance(value, str) or value not in datums:
                    continue
                resource = resources[datums[value]["resource"]]
                location = str(PurePosixPath(resource["root"] or ".", resource["resource_path"]))
                if resource["root"] == "":
                    location = resource["resource_path"]
                declared = descriptors[doc["descriptor"]]["data_keys"][key]
                dataset = resource["resource_kwargs"].get("dataset", "/entry/data/data")
                run["external_keys"][key] = {
                    "stream": stream,
                    "via": "resource",
                    "spec": resource["spec"],
                    "root": resource["root"],
                    "resource_path": resource["resource_path"],
                    "dataset": None if resource["spec"] == "NPY_SEQ" else dataset,
                    "declared_shape": declared["shape"],
                    "file_shape": _file_shape(
                        _local_path(location, run_dir, root_map), fixtures, resource["spec"], dataset
                    ),
                }
        elif name == "resource":
            resources[doc["uid"]] = doc
        elif name == "datum":
            datums[doc["datum_id"]] = doc
        elif name == "stream_resource":
            resources[doc["uid"]] = doc
        elif name == "stream_datum":
            stream_resource = resources[doc["stream_resource"]]
            descriptor = descriptors[doc["descriptor"]]
            stream = descriptor["name"]
            datum_rows[stream] = max(datum_rows[stream], doc["seq_nums"]["stop"] - 1)
            run["streams"][stream] = max(event_rows[stream], datum_rows[stream])
            key = stream_resource["data_key"]
            dataset = stream_resource["parameters"].get("dataset")
            run["external_keys"].setdefault(
                key,
                {
                    "stream": stream,
                    "via": "stream_resource",
                    "mimetype": stream_resource["mimetype"],
                    "uri": stream_resource["uri"],
                    "dataset": dataset,
                    "declared_shape": descriptor["data_keys"][key]["shape"],
                    "file_shape": _file_shape(
                        _local_path(stream_resource["uri"], run_dir, root_map), fixtures, "HDF5", dataset
                    ),
                },
            )
    return runs


NOTES = """
## expected.json

One entry per run file, keyed by its path under fixtures/: `status` (`ok`, `incomplete`, `invalid`),
`runs` (start documents in the file), `line` (1-based, as an editor counts, of the first problem; null
when none or when the problem is the end of the file), `reason` (a short lowercase phrase the error
message should contain), optional `note`. `unsafe/` and `moved/` files are schema-valid (`ok`) and carry
`writer`: what the writer must do with them. Readable runs also carry `uid`, `streams` (rows per stream:
events, or the seq_nums StreamDatums cover when a stream has no events) and `external_keys` (how each
external key is referenced, the shape its descriptor declares and `file_shape`, the shape the file
really holds, null when the file is missing or outside fixtures/); a file with several runs has
`run_details`, a list of those per run.

Decisions: `bad/second_start_before_stop.jsonl` is a second run starting (another uid) before the
first one stops: runs may not interleave (a repeated uid is `duplicate uid`). A STREAM: key without
any stream_resource is only known to be broken when its run ends, so that line is the stop's.

## What the RunEngine produced (left as it was)

- ophyd-async SimBlobDetector declares `bdet` with shape `[1, 240, 320]` per event while
  `/entry/data/data` holds `(N, 240, 320)`, and `bdet-sum` with shape `[1]` (dtype `number`) while
  `/entry/sum` holds `(N,)`. Two StreamResources (`bdet`, `bdet-sum`) name the same file, mimetype
  `application/x-hdf5`, parameters `dataset` and `chunk_shape` (`[1, 240, 320]`, `[1024]`); StreamDatum
  uids are `<stream_resource uid>/<n>`. ophyd-async also copies the file URI (`file://localhost/...`)
  into the descriptor's `source`; both were rewritten.
- The fly scan emits no events at all: one StreamDatum per key covers indices 0..4, and the stop's
  `num_events` still says `{"primary": 4}`.
- ophyd.sim `img` (NPY_SEQ): `external` is `"FILESTORE"` (no colon), `resource_path` is a 6-character
  stem with files `<stem>_<index>.npy`, datum_kwargs `{"index": n}`, and the descriptor's
  `configuration.img` holds the first datum id as a value: configuration values are not references.
- NaN and Infinity are written as bare `NaN`/`Infinity`/`-Infinity`; orjson refuses those lines.
- Only one baseline device: bluesky reads baseline devices from a set, so with several the key order
  of the documents changes between generations.
- uuid4 and time.time are pinned while runs are made, so a rerun with the same package versions
  rewrites the same bytes (HDF5 files included, here).
"""


def render_readme(entries: list[dict]) -> str:
    """fixtures/README.md: one table row a fixture file, then the notes."""
    out = [
        "# Fixtures",
        "",
        "Generated by `scripts/make_fixtures.py`; do not edit by hand, rerun it from the repository root:",
        "",
        "    .venv/bin/python scripts/make_fixtures.py",
        "",
        "Runs come from the real bluesky RunEngine with ophyd.sim and ophyd-async sim devices; variants are",
        "derived from them by hand, one fault a file. External files sit in `<dir>/data/`; paths in the",
        "documents are relative to the run file's folder, except in `moved/`, whose documents use the",
        f"absolute root of another site (map it with `--root-map {FOREIGN_ROOT}=fixtures/moved`).",
        "`facility/` holds hand-written runs in the forms real facility files take (issue 14), written by",
        "`scripts/fixture_facility.py`: see `facility/README.md`.",
        "`packs/` holds databroker-pack folders written by databroker-pack 0.3.0 itself (jsonl and msgpack,",
        "with and without `--copy-external`), by `scripts/make_pack_fixtures.py`, which needs a throwaway",
        "venv with databroker 1.x (never a project dependency): see that script's docstring.",
        "",
        "| file | what it is | how it was made | expected |",
        "|---|---|---|---|",
    ]
    for entry in entries:
        outcome = entry["status"]
        if entry.get("reason"):
            outcome += f": {entry['reason']}"
        if entry.get("line"):
            outcome += f" (line {entry['line']})"
        if entry.get("writer"):
            outcome += f"; writer: {entry['writer']}"
        out.append(f"| `{entry['file']}` | {entry['what']} | {entry['how']} | {outcome} |")
    return "\n".join(out) + "\n" + NOTES
