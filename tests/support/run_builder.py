"""Runs built the way normalize and resolve hand them to the writer, and writing them as the pipeline does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy
from event_model import compose_run

from ingester.external.plan import plan_external_nodes
from ingester.read.rows import blocks_from_rows
from ingester.runs import ExternalSource, NormalizedRun, StreamInfo
from ingester.write.layout import stream_metadata
from ingester.write.writer import write_run

__all__ = ["H", "W", "PROVENANCE", "RunBuilder", "scalar_run", "image_run", "write_planned"]

H, W = 12, 16
PROVENANCE = {"source": {"path": "/x/run.jsonl"}, "ingester": {"name": "bluesky-ingester"}}


# --- building runs the way normalize + resolve will hand them over ------------------------------


class RunBuilder:
    """Compose a run with event_model and keep what normalize/resolve would produce from it."""

    def __init__(self, path: Path, metadata: dict | None = None):
        self.bundle = compose_run(metadata=metadata or {})
        self.docs: list[tuple[str, dict]] = [("start", self.bundle.start_doc)]
        self.streams: dict[str, StreamInfo] = {}
        self.descriptors: dict[str, object] = {}
        self.rows: dict[str, list[dict]] = {}
        self.external: dict[str, ExternalSource] = {}
        self.path = path

    def stream(self, name: str, data_keys: dict, configuration: dict | None = None):
        bundle = self.bundle.compose_descriptor(name=name, data_keys=data_keys, configuration=configuration or {})
        self.docs.append(("descriptor", bundle.descriptor_doc))
        if name in self.streams:
            info = self.streams[name]
            info.descriptor_uids.append(bundle.descriptor_doc["uid"])
            doc = bundle.descriptor_doc
            info.config_updates.append({"uid": doc["uid"], "time": doc["time"], "configuration": doc["configuration"]})
        else:
            self.streams[name] = StreamInfo(name, dict(bundle.descriptor_doc), [bundle.descriptor_doc["uid"]])
            self.descriptors[name] = bundle
            self.rows[name] = []
        return bundle

    def event(self, name: str, data: dict, time: float = 1.0):
        bundle = self.descriptors[name]
        event = bundle.compose_event(data=data, timestamps={k: time for k in data}, time=time)
        self.docs.append(("event", event))
        row = {"seq_num": event["seq_num"], "time": event["time"], **event["data"]}
        row.update({f"ts_{k}": v for k, v in event["timestamps"].items()})
        self.rows[name].append(row)
        self.streams[name].row_count += 1

    def hdf5(self, name: str, key: str, file: Path, frames: int, parameters: dict, server_uri: str | None = None):
        uri = f"file://localhost{file}"
        sres = self.bundle.compose_stream_resource(
            mimetype="application/x-hdf5", uri=uri, data_key=key, parameters=parameters
        )
        doc = {k: v for k, v in sres.stream_resource_doc.items() if k != "run_start"}
        self.docs.append(("stream_resource", sres.stream_resource_doc))
        datums = []
        for i in range(frames):
            datum = sres.compose_stream_datum(
                indices={"start": i, "stop": i + 1}, descriptor=self.descriptors[name].descriptor_doc
            )
            datums.append(datum)
            self.docs.append(("stream_datum", datum))
        self.external[doc["uid"]] = ExternalSource(
            doc, len(self.docs), "stream_resource", str(file), name, datums, uri, server_uri or uri
        )

    def finish(self) -> NormalizedRun:
        stop = self.bundle.compose_stop()
        self.docs.append(("stop", stop))
        start = self.bundle.start_doc
        return NormalizedRun(start["uid"], self.path, start, stop, self.streams, self.external, [])

    def batches(self, size: int = 4):
        """The rows as the pipeline hands them to the writer: blocks of `size` rows, as columns."""
        for name, rows in self.rows.items():
            for block in blocks_from_rows(rows, size):
                yield name, block


def scalar_run(tmp_path: Path, n: int = 10, **metadata) -> RunBuilder:
    run = RunBuilder(tmp_path / "run.jsonl", metadata)
    keys = {
        "motor": {"source": "sim", "dtype": "number", "shape": [], "dtype_numpy": "<f8"},
        "det": {"source": "sim", "dtype": "integer", "shape": [], "dtype_numpy": "<i8"},
    }
    run.stream("primary", keys, {"det": {"data": {"det_gain": 2}, "timestamps": {"det_gain": 1.0}, "data_keys": {}}})
    run.stream("baseline", {"temp": {"source": "sim", "dtype": "number", "shape": []}})
    for i in range(2):
        run.event("baseline", {"temp": 20.0 + i}, time=100.0 + i)
    for i in range(n):
        run.event("primary", {"motor": i / 2, "det": i * 10}, time=200.0 + i)
    return run


def image_run(tmp_path: Path, frames: int = 5, files: int = 1) -> tuple[RunBuilder, list[numpy.ndarray]]:
    """ophyd-async's HDF5 detector: declares [1, H, W] per event while the file holds (N, H, W)."""
    run = RunBuilder(tmp_path / "img.jsonl")
    keys = {
        "img": {"source": "sim", "dtype": "array", "shape": [1, H, W], "dtype_numpy": "|u1", "external": "STREAM:"},
        "sum": {"source": "sim", "dtype": "number", "shape": [], "dtype_numpy": "<f8"},
    }
    run.stream("primary", keys)
    stacks = []
    for f in range(files):
        data = numpy.random.default_rng(f).integers(0, 255, (frames, H, W), dtype=numpy.uint8)
        path = tmp_path / f"det_{f}.h5"
        with h5py.File(path, "w") as h5:
            h5.create_dataset("/entry/data/data", data=data, chunks=(1, H, W))
        run.hdf5("primary", "img", path, frames, {"dataset": "/entry/data/data", "chunk_shape": [1, H, W]})
        stacks.append(data)
    for i in range(frames * files):
        run.event("primary", {"sum": float(i)}, time=300.0 + i)
    return run, stacks


def write_planned(parent: Any, run: NormalizedRun, blocks, *, provenance: dict, **options: Any) -> None:
    """`write_run`, its external nodes planned (and checked against the files) first, as the pipeline does."""
    plans = plan_external_nodes(run, {name: stream_metadata(info) for name, info in run.streams.items()})
    write_run(parent, run, blocks, provenance=provenance, plans=plans, **options)
