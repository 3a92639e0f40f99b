"""(Re)generate fixtures/facility/: short hand-written runs in the forms real facility files take (issue 14).

    .venv/bin/python scripts/fixture_facility.py

Needs only the project's own dependencies (event-model, h5py, numpy), not the `fixtures` extra, so
it also runs on its own; `make_fixtures.py` calls it after the RunEngine fixtures. It deletes and
rewrites fixtures/facility/ (documents and their small HDF5 files) and replaces the `facility/`
entries of fixtures/expected.json (the other entries are left as they are), and writes
fixtures/facility/README.md, the table of what each file is and how it was made.

Every document is written by hand here (no RunEngine): uids are uuid5 of a fixed seed, times a fixed
clock, so a rerun rewrites the same bytes. Each file reproduces one class of what beamline files hold
that event-model 1.24 (or Tiled) does not take as it is; the `writer` entry says what `ingest-dir` does.
"""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import h5py
import numpy

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FACILITY = FIXTURES / "facility"
BASE_TIME = 1_561_939_200.0  # 2019-07-01T00:00:00Z
_NAMESPACE = uuid.UUID("5a1e0c1e-0000-4000-8000-000000000014")

Docs = list[tuple[str, dict[str, Any]]]


class Run:
    """One run written by hand: documents in file order, uids from `seed`, times from a fixed clock."""

    def __init__(self, seed: str, **start: Any):
        self.seed = seed
        self.count = 0
        self.clock = BASE_TIME
        self.docs: Docs = []
        self.seq: dict[str, int] = {}
        self.rows: dict[str, int] = {}
        self.stream_of: dict[str, str] = {}
        self.uid = self.new_uid()
        self.add("start", {"uid": self.uid, "time": self.tick(), "scan_id": 1, "plan_name": "count", **start})

    def new_uid(self) -> str:
        self.count += 1
        return str(uuid.uuid5(_NAMESPACE, f"{self.seed}/{self.count}"))

    def tick(self) -> float:
        self.clock += 0.25
        return round(self.clock, 3)

    def add(self, name: str, doc: dict[str, Any]) -> dict[str, Any]:
        self.docs.append((name, doc))
        return doc

    def descriptor(self, name: str, data_keys: dict, configuration: dict | None = None) -> str:
        uid = self.new_uid()
        doc = {"uid": uid, "run_start": self.uid, "time": self.tick(), "name": name, "data_keys": data_keys,
               "configuration": configuration or {}, "hints": {}, "object_keys": {}}  # fmt: skip
        self.add("descriptor", doc)
        self.seq[uid] = 0
        self.stream_of[uid] = name
        self.rows.setdefault(name, 0)
        return uid

    def event(self, descriptor: str, data: dict, filled: dict | None = None) -> dict:
        self.seq[descriptor] += 1
        self.rows[self.stream_of[descriptor]] += 1
        time = self.tick()
        doc = {"uid": self.new_uid(), "descriptor": descriptor, "seq_num": self.seq[descriptor], "time": time,
               "data": data, "timestamps": {k: time for k in data}, "filled": filled or {}}  # fmt: skip
        return self.add("event", doc)

    def resource(self, spec: str, root: str, path: str, kwargs: dict, **extra: Any) -> str:
        uid = self.new_uid()
        self.add("resource", {"uid": uid, "spec": spec, "root": root, "resource_path": path,
                              "resource_kwargs": kwargs, "path_semantics": "posix", **extra})  # fmt: skip
        return uid

    def datum(self, resource: str, n: int, kwargs: dict) -> str:
        datum_id = f"{resource}/{n}"
        self.add("datum", {"datum_id": datum_id, "resource": resource, "datum_kwargs": kwargs})
        return datum_id

    def stream_resource(self, key: str, uri: str, parameters: dict) -> str:
        uid = self.new_uid()
        self.add("stream_resource", {"uid": uid, "data_key": key, "mimetype": "application/x-hdf5", "uri": uri,
                                     "parameters": parameters, "run_start": self.uid})  # fmt: skip
        return uid

    def stream_datum(self, resource: str, descriptor: str, start: int, stop: int) -> None:
        self.add("stream_datum", {"uid": f"{resource}/{start}", "stream_resource": resource, "descriptor": descriptor,
                                  "indices": {"start": start, "stop": stop},
                                  "seq_nums": {"start": start + 1, "stop": stop + 1}})  # fmt: skip

    def stop(self, **extra: Any) -> None:
        self.add("stop", {"uid": self.new_uid(), "run_start": self.uid, "time": self.tick(), "exit_status": "success",
                          "num_events": dict(self.rows), **extra})  # fmt: skip


def scalar(source: str = "PV:x") -> dict:
    return {"dtype": "number", "shape": [], "source": source}


def image(shape: list[int], external: str = "FILESTORE:", dtype_numpy: str = "<u2") -> dict:
    return {"dtype": "array", "shape": shape, "source": "PV:image", "external": external, "dtype_numpy": dtype_numpy}


def write_h5(path: Path, dataset: str, array: numpy.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", track_order=True) as fh:
        fh.create_dataset(dataset, data=array, chunks=(1, *array.shape[1:]), track_times=False)


def frames(n: int, h: int, w: int, seed: int) -> numpy.ndarray:
    return (numpy.arange(n * h * w, dtype=numpy.uint16).reshape(n, h, w) + seed).astype(numpy.uint16)


# -- the runs ------------------------------------------------------------------------------------


def resource_with_id() -> list[Run]:
    """databroker-era Resource with the legacy `id` key (a copy of its uid) and no run_start."""
    run = Run("facility/resource_id", beamline_id="APS-8ID", sample="legacy")
    write_h5(FACILITY / "data" / "legacy-id.h5", "/entry/data/data", frames(3, 4, 5, 10))
    desc = run.descriptor("primary", {"I0": scalar("8idi:scaler1.S2"), "ccd_image": image([4, 5])})
    res = run.resource("AD_HDF5", "", "data/legacy-id.h5", {"frame_per_point": 1})
    run.docs[-1][1]["id"] = res
    del run.docs[-1][1]["path_semantics"]
    for n in range(3):
        datum = run.datum(res, n, {"point_number": n})
        run.event(desc, {"I0": 1000.0 + n, "ccd_image": datum})
    run.stop()
    return [run]


def column_collisions() -> list[Run]:
    """An APS scaler's `Time` channel beside the event `time` column, `Seq_Num`, keys `I0`/`i0` that
    differ only in case, `TS_det` beside det's timestamp column `ts_det`, and `ts_mon` spelled exactly
    as mon's timestamp column."""
    run = Run("facility/collisions", beamline_id="APS-9ID")
    keys = ["det", "Time", "Seq_Num", "I0", "i0", "TS_det", "mon", "ts_mon"]
    desc = run.descriptor("primary", {k: scalar(f"9idb:scaler1.{k}") for k in keys})
    base = run.descriptor("baseline", {"temperature": scalar("9idb:temp")})
    run.event(base, {"temperature": 295.0})
    for n in range(4):
        run.event(desc, {k: float(10 * i + n) for i, k in enumerate(keys)})
    run.event(base, {"temperature": 296.5})
    run.stop()
    return [run]


def stream_resource_with_zeros() -> list[Run]:
    """ophyd-async StreamResource written before the detector was armed: shape [1, 0, 0] in the
    descriptor and chunk_shape [0, 0, 0]; the file holds (3, 6, 8)."""
    run = Run("facility/zeros", beamline_id="DLS-i22", plan_name="fly")
    write_h5(FACILITY / "data" / "zeros.h5", "/entry/data/data", frames(3, 6, 8, 20))
    key = {**image([1, 0, 0], "STREAM:"), "source": "file://localhost/dls/i22/data/zeros.h5"}
    desc = run.descriptor("primary", {"saxs": key})
    res = run.stream_resource("saxs", "data/zeros.h5", {"dataset": "/entry/data/data", "chunk_shape": [0, 0, 0]})
    run.stream_datum(res, desc, 0, 3)
    run.rows["primary"] = 3
    run.stop()
    return [run]


def detector_shapes() -> list[Run]:
    """One detector in two runs, its image shape declared [6, 8] in one and [1, 6, 8] in the other."""
    runs = []
    for n, shape in enumerate(([6, 8], [1, 6, 8])):
        run = Run(f"facility/shapes/{n}", beamline_id="DLS-i22", plan_name="fly")
        write_h5(FACILITY / "data" / f"shapes-{n}.h5", "/entry/data/data", frames(2, 6, 8, 30 + n))
        desc = run.descriptor("primary", {"waxs": image(shape, "STREAM:")})
        params = {"dataset": "/entry/data/data", "chunk_shape": [1, 6, 8]}
        res = run.stream_resource("waxs", f"data/shapes-{n}.h5", params)
        run.stream_datum(res, desc, 0, 2)
        run.rows["primary"] = 2
        run.stop()
        runs.append(run)
    return runs


def stream_key_with_datums() -> list[Run]:
    """`external: "STREAM:"` on a key served by Resource/Datum (frame datums), `FILESTORE` without
    the colon on a key served by StreamResource/StreamDatum, and a configuration value holding a datum
    id whose datum comes later in the stream."""
    run = Run("facility/stream_key", beamline_id="NSLS2-CHX")
    write_h5(FACILITY / "data" / "stream-key.h5", "/entry/data/data", frames(3, 4, 5, 40))
    write_h5(FACILITY / "data" / "filestore-key.h5", "/entry/data/data", frames(3, 4, 5, 50))
    res_uid = str(uuid.uuid5(_NAMESPACE, "facility/stream_key/resource"))
    first_datum = f"{res_uid}/0"
    config = {"cam": {"data": {"cam_image": first_datum}, "timestamps": {"cam_image": BASE_TIME},
                      "data_keys": {"cam_image": image([4, 5])}}}  # fmt: skip
    keys = {"cam": image([1, 4, 5], "STREAM:"), "roi": image([4, 5], "FILESTORE"), "I0": scalar()}
    desc = run.descriptor("primary", keys, config)
    run.add("resource", {"uid": res_uid, "spec": "AD_HDF5_SWMR_STREAM", "root": "", "resource_path":
                         "data/stream-key.h5", "resource_kwargs": {"frame_per_point": 1}, "path_semantics": "posix"})  # fmt: skip
    sres = run.stream_resource(
        "roi", "data/filestore-key.h5", {"dataset": "/entry/data/data", "chunk_shape": [1, 4, 5]}
    )
    for n in range(3):
        datum = run.datum(res_uid, n, {"dataset": "/entry/data/data", "frame": n})
        run.event(desc, {"cam": datum, "I0": 5.0 + n})
    run.stream_datum(sres, desc, 0, 3)
    run.stop()
    return [run]


def filled_with_datum_ids() -> list[Run]:
    """Events exported after databroker filled them: the image values in `data`, and `filled`
    holding the datum ids they were loaded from instead of `true`."""
    run = Run("facility/filled_ids", beamline_id="CLS-BXDS")
    desc = run.descriptor("primary", {"spectrum": image([4]), "I0": scalar()})
    res = run.resource("XSP3", "/cls/bxds/2020", "spectra.h5", {})
    for n in range(3):
        datum = run.datum(res, n, {"frame": n})
        run.event(desc, {"spectrum": [n, n + 1, n + 2, n + 3], "I0": 1.5 * n}, filled={"spectrum": datum})
    run.stop()
    return [run]


def computed_resource() -> list[Run]:
    """A handler that computes its data: Resource spec `newton`, root `/`, resource_path empty."""
    run = Run("facility/newton", beamline_id="SIM")
    desc = run.descriptor("primary", {"img": image([4, 5], "FILESTORE:", "<f8"), "x": scalar()})
    res = run.resource("newton", "/", "", {"max_iter": 10, "shape": [4, 5]})
    for n in range(2):
        datum = run.datum(res, n, {"x": float(n), "y": 0.5})
        run.event(desc, {"img": datum, "x": float(n)})
    run.stop()
    return [run]


def missing_detector_file() -> list[Run]:
    """A step scan whose detector files were lost from the archive: `pilatus` and `eiger` name
    files that do not exist; `I0` and `motor` are in the documents."""
    run = Run("facility/missing", beamline_id="NSLS2-SMI", plan_name="scan")
    keys = {"motor": scalar("XF:12ID:motor"), "I0": scalar(), "pilatus": image([4, 5]), "eiger": image([4, 5])}
    desc = run.descriptor("primary", keys)
    pilatus = run.resource("AD_HDF5", "", "data/lost-pilatus.h5", {"frame_per_point": 1})
    eiger = run.resource("AD_HDF5", "", "data/lost-eiger.h5", {"frame_per_point": 1})
    for n in range(3):
        data = {"motor": 0.1 * n, "I0": 100.0 + n}
        data["pilatus"] = run.datum(pilatus, n, {"point_number": n})
        data["eiger"] = run.datum(eiger, n, {"point_number": n})
        run.event(desc, data)
    run.stop()
    return [run]


CASES = [  # file, make, what it is, what ingest-dir does with it
    ("resource_legacy_id.jsonl", resource_with_id,
     "legacy Resource (AD_HDF5) with an `id` key and no run_start; data/legacy-id.h5 (3, 4, 5)",
     "ingested; `id` dropped, noted under _ingest.legacy"),
    ("column_collisions.jsonl", column_collisions,
     "scaler keys `Time`, `Seq_Num`, `I0`/`i0`, `TS_det` (beside det), `ts_mon` (beside mon); a baseline stream",
     "ingested; colliding keys as array nodes beside `internal`"),
    ("stream_resource_zeros.jsonl", stream_resource_with_zeros,
     "ophyd-async StreamResource, descriptor shape [1, 0, 0], chunk_shape [0, 0, 0]; data/zeros.h5 (3, 6, 8)",
     "ingested; shape and chunks from the file"),
    ("detector_shapes.jsonl", detector_shapes,
     "two runs of one detector, image shape declared [6, 8] then [1, 6, 8]; files (2, 6, 8)",
     "ingested; shape from the file in both"),
    ("stream_key_with_datums.jsonl", stream_key_with_datums,
     "`STREAM:` key served by Resource/Datum (frame datums), `FILESTORE` (no colon) key served by "
     "StreamResource/StreamDatum, configuration value holding a later datum id",
     "ingested"),
    ("filled_with_datum_ids.jsonl", filled_with_datum_ids,
     "events filled by databroker: values in `data`, datum ids in `filled`",
     "ingested; the filled values in the internal table"),
    ("computed_resource.jsonl", computed_resource,
     "Resource spec `newton`, root `/`, empty resource_path: a handler that computes its data",
     "refused: names no file; with --on-missing-file skip ingested without `img`"),
    ("missing_detector_file.jsonl", missing_detector_file,
     "scan whose `pilatus` and `eiger` files (data/lost-*.h5) are not there",
     "refused: does not exist; with --on-missing-file skip ingested without them"),
]  # fmt: skip


def write_jsonl(path: Path, docs: Docs) -> None:
    path.write_text("".join(json.dumps([name, doc]) + "\n" for name, doc in docs))


def make_facility() -> dict[str, dict]:
    """Write fixtures/facility/ and return its expected.json entries (keyed by file)."""
    shutil.rmtree(FACILITY, ignore_errors=True)
    (FACILITY / "data").mkdir(parents=True)
    entries, rows = {}, []
    for name, make, what, writer in CASES:
        runs = make()
        write_jsonl(FACILITY / name, [pair for run in runs for pair in run.docs])
        details = [{"uid": run.uid, "streams": dict(run.rows)} for run in runs]
        entry = {"status": "ok", "runs": len(runs), "line": None, "reason": None, "writer": writer}
        entry.update(details[0] if len(runs) == 1 else {"run_details": details})
        entries[f"facility/{name}"] = entry
        rows.append(f"| `facility/{name}` | {what} | {writer} |")
    readme = [
        "# Facility forms",
        "",
        "Written by `scripts/fixture_facility.py` (hand-written documents, uuid5 uids, a fixed clock; rerun it",
        "from the repository root). Each file is one form that beamline files hold and event-model 1.24 or",
        "Tiled does not take as it is. External files are in `data/`, relative to this folder.",
        "",
        "| file | what it is | what ingest-dir does |",
        "|---|---|---|",
        *rows,
        "",
    ]
    (FACILITY / "README.md").write_text("\n".join(readme))
    return entries


def merge_into_expected(entries: dict[str, dict]) -> None:
    """Replace the `facility/` entries of fixtures/expected.json, keeping the others as they are."""
    path = FIXTURES / "expected.json"
    expected = json.loads(path.read_text()) if path.exists() else {}
    expected = {k: v for k, v in expected.items() if not k.startswith("facility/")}
    expected.update(entries)
    path.write_text(json.dumps(expected, indent=2) + "\n")


def main() -> int:
    entries = make_facility()
    merge_into_expected(entries)
    print(f"wrote {len(entries)} facility fixture files under {FACILITY}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
