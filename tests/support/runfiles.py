"""Run files written the way an experiment writes them: suitcase-jsonl, line by line."""

from __future__ import annotations

import time
from pathlib import Path

import event_model
import orjson

__all__ = ["write_run_file", "write_many_runs"]


def write_run_file(path: Path, events: int = 5, *, pause: float = 0.0, stop: bool = True) -> str:
    """A suitcase-jsonl run file, written line by line (with `pause` between lines)."""
    run = event_model.compose_run()
    desc = run.compose_descriptor(name="primary", data_keys={"x": {"source": "sim", "dtype": "number", "shape": []}})
    docs = [("start", run.start_doc), ("descriptor", desc.descriptor_doc)]
    docs += [
        ("event", desc.compose_event(data={"x": float(i)}, timestamps={"x": 1.0}, seq_num=i + 1, validate=False))
        for i in range(events)
    ]
    if stop:
        docs.append(("stop", run.compose_stop()))
    with open(path, "wb") as fh:
        for name, doc in docs:
            fh.write(orjson.dumps([name, doc]) + b"\n")
            fh.flush()
            if pause:
                time.sleep(pause)
    return run.start_doc["uid"]


def write_many_runs(path: Path, count: int, events: int = 3) -> list[str]:
    """One suitcase-jsonl file holding `count` small runs, one after the other; their uids."""
    uids = []
    with open(path, "wb") as fh:
        for _ in range(count):
            run = event_model.compose_run()
            desc = run.compose_descriptor(
                name="primary", data_keys={"x": {"source": "s", "dtype": "number", "shape": []}}
            )
            docs = [("start", run.start_doc), ("descriptor", desc.descriptor_doc)]
            docs += [("event", desc.compose_event(data={"x": float(i)}, timestamps={"x": 1.0}, seq_num=i + 1))
                     for i in range(events)]  # fmt: skip
            docs.append(("stop", run.compose_stop()))
            fh.write(b"".join(orjson.dumps([name, doc]) + b"\n" for name, doc in docs))
            uids.append(run.start_doc["uid"])
    return uids
