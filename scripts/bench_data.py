"""Synthetic runs for the benchmarks, made with event-model's compose_run.

Used only by scripts/bench.py; the test suite has its own fixtures.
"""

from __future__ import annotations

import math
from pathlib import Path

import event_model
import orjson

__all__ = ["write_scalar_run", "write_stream_datum_run", "write_small_runs"]


def _dump(fh, name: str, doc: dict) -> None:
    fh.write(orjson.dumps([name, doc], option=orjson.OPT_SERIALIZE_NUMPY))
    fh.write(b"\n")


def write_scalar_run(path: Path, events: int, columns: int = 8, *, baseline: bool = True) -> str:
    """A suitcase-jsonl file: one run, `events` events of `columns` float columns (+ a baseline)."""
    run = event_model.compose_run(metadata={"plan_name": "bench_scalar", "num_points": events})
    keys = [f"ch{i}" for i in range(columns)]
    data_keys = {k: {"source": "sim", "dtype": "number", "shape": []} for k in keys}
    with open(path, "wb") as fh:
        _dump(fh, "start", run.start_doc)
        if baseline:
            base = run.compose_descriptor(
                name="baseline", data_keys={"temp": {"source": "sim", "dtype": "number", "shape": []}}
            )
            _dump(fh, "descriptor", base.descriptor_doc)
            _dump(fh, "event", base.compose_event(data={"temp": 21.5}, timestamps={"temp": 1.0}, seq_num=1))
        desc = run.compose_descriptor(name="primary", data_keys=data_keys)
        _dump(fh, "descriptor", desc.descriptor_doc)
        t0 = run.start_doc["time"]
        for i in range(events):
            t = t0 + i * 0.01
            data = {k: math.sin(i * 0.001 + j) for j, k in enumerate(keys)}
            _dump(
                fh,
                "event",
                desc.compose_event(data=data, timestamps=dict.fromkeys(keys, t), seq_num=i + 1, validate=False),
            )
        if baseline:
            _dump(fh, "event", base.compose_event(data={"temp": 21.6}, timestamps={"temp": 2.0}, seq_num=2))
        _dump(fh, "stop", run.compose_stop())
    return run.start_doc["uid"]


def write_stream_datum_run(path: Path, data_dir: Path, datums: int, frame: tuple[int, int] = (4, 4)) -> str:
    """One HDF5 file of `datums` frames, indexed by `datums` StreamDatum documents (one frame each)."""
    import h5py
    import numpy

    data_dir.mkdir(parents=True, exist_ok=True)
    h5 = data_dir / "frames.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset(
            "/entry/data/data", data=numpy.arange(datums * frame[0] * frame[1], dtype="<u2").reshape(datums, *frame)
        )
    run = event_model.compose_run(metadata={"plan_name": "bench_stream_datum"})
    data_keys = {
        "det": {"source": "sim", "dtype": "array", "dtype_numpy": "<u2", "shape": [1, *frame], "external": "STREAM:"},
        "det_sum": {"source": "sim", "dtype": "number", "shape": []},
    }
    desc = run.compose_descriptor(name="primary", data_keys=data_keys)
    sres = run.compose_stream_resource(
        mimetype="application/x-hdf5",
        uri=f"file://localhost{h5.absolute()}",
        data_key="det",
        parameters={"dataset": "/entry/data/data", "chunk_shape": [1, *frame]},
    )
    with open(path, "wb") as fh:
        _dump(fh, "start", run.start_doc)
        _dump(fh, "descriptor", desc.descriptor_doc)
        _dump(fh, "stream_resource", sres.stream_resource_doc)
        for i in range(datums):
            sd = sres.compose_stream_datum(
                indices=event_model.StreamRange(start=i, stop=i + 1), descriptor=desc.descriptor_doc, validate=False
            )
            _dump(fh, "stream_datum", sd)
            _dump(
                fh,
                "event",
                desc.compose_event(
                    data={"det_sum": float(i)}, timestamps={"det_sum": 1.0}, seq_num=i + 1, validate=False
                ),
            )
        _dump(fh, "stop", run.compose_stop())
    return run.start_doc["uid"]


def write_small_runs(folder: Path, runs: int, events: int = 10) -> list[str]:
    """`runs` small suitcase-jsonl files: `events` events of 3 columns and a 2-row baseline each."""
    folder.mkdir(parents=True, exist_ok=True)
    uids = []
    for n in range(runs):
        uids.append(write_scalar_run(folder / f"run-{n:05d}.jsonl", events, columns=3))
    return uids
