"""Parity of ingester.read.normalize with bluesky-tiled-plugins' RunNormalizer + _RunWriter.event.

Each run is composed with event_model, then fed both through RunNormalizer (collecting what it
emits) and through normalize_run + RowBuilder (ingester/rows.py), and the results are compared.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import h5py
import numpy
import pytest
from bluesky_tiled_plugins.writing.tiled_writer import RunNormalizer, concatenate_stream_datums
from event_model import compose_run
from tiled.utils import ensure_uri

from ingester.columns import ColumnBlock
from ingester.problems import IngestError
from ingester.read.normalize import normalize_run
from ingester.read.rows import RowBuilder
from ingester.runs import Document


def _documents(pairs: list[tuple[str, dict]]) -> list[Document]:
    return [Document(name, doc, line) for line, (name, doc) in enumerate(pairs, start=1)]


def _reference(pairs: list[tuple[str, dict]]) -> dict:
    """What RunNormalizer emits for the run, grouped the way our NormalizedRun holds it."""
    emitted: list[tuple[str, dict]] = []
    normalizer = RunNormalizer()
    normalizer.subscribe(lambda name, doc: emitted.append((name, doc)))
    for name, doc in pairs:
        normalizer(name, copy.deepcopy(doc))
    stream_of: dict[str, str] = {}
    result: dict = {"descriptors": {}, "config_updates": {}, "sres": {}, "sdat": {}, "rows": {}}
    for name, doc in emitted:
        if name == "descriptor":
            stream_of[doc["uid"]] = doc["name"]
            if doc["name"] in result["descriptors"]:
                update = {"uid": doc["uid"], "time": doc["time"]}
                if doc.get("configuration"):
                    update["configuration"] = doc["configuration"]
                result["config_updates"].setdefault(doc["name"], []).append(update)
            else:
                result["descriptors"][doc["name"]] = doc
        elif name == "stream_resource":
            result["sres"][doc["uid"]] = doc
        elif name == "stream_datum":
            result["sdat"].setdefault(doc["stream_resource"], []).append(doc)
        elif name == "event":
            # _RunWriter.event
            row = {"seq_num": doc["seq_num"], "time": doc["time"], **doc["data"]}
            row.update({f"ts_{k}": v for k, v in doc["timestamps"].items()})
            result["rows"].setdefault(stream_of[doc["descriptor"]], []).append(row)
        elif name == "stop":
            result["notes"] = doc["_run_normalizer_notes"]
    return result


def _row_blocks(documents: list[Document]) -> list[tuple[str, ColumnBlock]]:
    blocks: list[tuple[str, ColumnBlock]] = []
    builder = RowBuilder(lambda stream, block: blocks.append((stream, block)))
    for document in documents:
        builder.feed(document)
    builder.finish()
    return blocks


def _ours(pairs: list[tuple[str, dict]], path: Path) -> tuple:
    """Our run, our rows per stream, and the keys of each stream's first row (the table's columns)."""
    documents = _documents(copy.deepcopy(pairs))
    pristine = copy.deepcopy(documents)
    run = normalize_run(documents, path)
    rows: dict[str, list[dict]] = {}
    first_rows: dict[str, list[str]] = {}
    for stream, block in _row_blocks(documents):
        assert block.length > 0
        first_rows.setdefault(stream, list(block.first_row))
        rows.setdefault(stream, []).extend(block.rows())
    assert documents == pristine, "normalize must not modify the documents it reads"
    return run, rows, first_rows


def _merged(datums: list[dict]) -> list[dict]:
    """StreamDatums with consecutive ones merged by TiledWriter's own concatenate_stream_datums."""
    groups: list[list[dict]] = []
    for datum in datums:
        last = groups[-1][-1] if groups else None
        if (
            last is not None
            and last["indices"]["stop"] == datum["indices"]["start"]
            and last["seq_nums"]["stop"] == datum["seq_nums"]["start"]
            and last["descriptor"] == datum["descriptor"]
        ):
            groups[-1].append(datum)
        else:
            groups.append([datum])
    return [dict(concatenate_stream_datums(*group)) for group in groups]


def _assert_parity(pairs: list[tuple[str, dict]], path: Path) -> None:
    reference = _reference(pairs)
    run, rows, first_rows = _ours(pairs, path)

    assert {name: info.descriptor for name, info in run.streams.items()} == reference["descriptors"]
    assert {name: info.config_updates for name, info in run.streams.items() if info.config_updates} == reference[
        "config_updates"
    ]
    assert run.notes == reference["notes"]
    assert "_run_normalizer_notes" not in (run.stop or {})

    # Rows: same values in every row, and the first row's keys in the same order (pyarrow takes a
    # table's columns from its first row).
    assert rows == reference["rows"]
    assert first_rows == {s: list(rs[0]) for s, rs in reference["rows"].items()}
    assert {name: info.row_count for name, info in run.streams.items()} == {
        name: len(reference["rows"].get(name, [])) for name in run.streams
    }

    assert run.external.keys() == reference["sres"].keys()
    for uid, expected in reference["sres"].items():
        source = run.external[uid]
        theirs = dict(expected)
        ours = dict(source.doc)
        # RunNormalizer made a legacy location absolute against the working directory.
        location = source.original_location
        if source.source_name == "resource" or "mimetype" not in _find(pairs, source.line):
            tail = "/" if location.endswith("/") else ""
            location = ensure_uri(location).rstrip("/") + tail
        assert theirs.pop("uri") == location
        assert ours.pop("uri") == source.original_location
        assert ours == theirs
        assert source.stream_datums == _merged(reference["sdat"].get(uid, []))


def _find(pairs: list[tuple[str, dict]], line: int) -> dict:
    return pairs[line - 1][1]


@pytest.fixture
def h5file(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "det.h5"
    path.parent.mkdir()
    with h5py.File(path, "w") as file:
        file["/entry/data/data"] = numpy.arange(5 * 2 * 3, dtype="<f8").reshape(5, 2, 3)
    return path


def _legacy_hdf5_run(h5file: Path) -> list[tuple[str, dict]]:
    """Resource/Datum with `frame` datum kwargs, dtype_str, a reserved key, event pages, two streams."""
    bundle = compose_run(metadata={"plan_name": "count"})
    pairs: list[tuple[str, dict]] = [("start", bundle.start_doc)]
    primary = bundle.compose_descriptor(
        name="primary",
        data_keys={
            "det_image": {"source": "d", "dtype": "array", "shape": [2, 3], "external": "FILESTORE:"},
            "motor": {"source": "m", "dtype": "number", "shape": [], "dtype_str": "<f4"},
            "time": {"source": "t", "dtype": "number", "shape": []},
        },
        object_keys={"det": ["det_image"], "motor": ["motor", "time"]},
        configuration={
            "det": {
                "data": {"gain": 1},
                "timestamps": {"gain": 0.0},
                "data_keys": {"gain": {"source": "g", "dtype": "integer", "shape": None}},
            }
        },
        validate=False,  # shape None is a legacy form the schema refuses
    )
    pairs.append(("descriptor", primary.descriptor_doc))
    resource = bundle.compose_resource(
        spec="AD_HDF5",
        root=str(h5file.parent),
        resource_path=h5file.name,
        resource_kwargs={"frame_per_point": 1},
    )
    pairs.append(("resource", resource.resource_doc))
    for i in range(5):
        datum = resource.compose_datum(datum_kwargs={"frame": i})
        pairs.append(("datum", datum))
        event = primary.compose_event(
            data={"det_image": datum["datum_id"], "motor": 0.5 * i, "time": 10.0 + i},
            timestamps={"det_image": 1.0 + i, "motor": 2.0 + i, "time": 3.0 + i},
            filled={"det_image": False},
            seq_num=i + 1,
        )
        pairs.append(("event", event))
    baseline = bundle.compose_descriptor(
        name="baseline",
        data_keys={
            "temp": {"source": "T", "dtype": "number", "shape": []},
            "label": {"source": "L", "dtype": "string", "shape": []},
        },
    )
    pairs.append(("descriptor", baseline.descriptor_doc))
    page = baseline.compose_event_page(
        data={"temp": [1.0, 2.0, 3.0, 4.0], "label": ["a", "b", "c", "d"]},
        timestamps={"temp": [1, 2, 3, 4], "label": [5, 6, 7, 8]},
        seq_num=[1, 2, 3, 4],
    )
    pairs.append(("event_page", page))
    # A repeated descriptor of the same stream (a configuration update) and one more event.
    again = bundle.compose_descriptor(
        name="baseline",
        data_keys={
            "temp": {"source": "T", "dtype": "number", "shape": []},
            "label": {"source": "L", "dtype": "string", "shape": []},
        },
        configuration={
            "T": {
                "data": {"offset": 2},
                "timestamps": {"offset": 1.0},
                "data_keys": {"offset": {"source": "o", "dtype": "number", "shape": []}},
            }
        },
    )
    pairs.append(("descriptor", again.descriptor_doc))
    pairs.append(
        ("event", again.compose_event(data={"temp": 5.0, "label": "e"}, timestamps={"label": 9, "temp": 8}, seq_num=5))
    )
    pairs.append(("stop", bundle.compose_stop()))
    return pairs


def test_legacy_hdf5_frames_pages_reserved_dtype_str(h5file: Path, tmp_path: Path) -> None:
    pairs = _legacy_hdf5_run(h5file)
    _assert_parity(pairs, tmp_path / "run.jsonl")
    run, rows, first_rows = _ours(pairs, tmp_path / "run.jsonl")
    (source,) = run.external.values()
    assert source.original_location == str(h5file)
    assert source.doc["parameters"]["dataset"] == "/entry/data/data"
    assert source.doc["parameters"]["multiplier"] == 1
    assert source.stream == "primary" and source.source_name == "resource" and source.line == 3
    assert run.streams["primary"].descriptor["data_keys"]["motor"]["dtype_numpy"] == "<f4"
    assert "time_" in run.streams["primary"].descriptor["data_keys"]
    assert first_rows["primary"] == ["seq_num", "time", "motor", "time_", "ts_motor", "ts_time_"]
    assert run.notes == ["Renamed data_key 'time' to 'time_' in stream primary"]
    assert run.streams["baseline"].row_count == 5


def test_relative_npy_sequence_is_kept_relative(tmp_path: Path) -> None:
    bundle = compose_run()
    pairs: list[tuple[str, dict]] = [("start", bundle.start_doc)]
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={
            "img": {"source": "s", "dtype": "array", "shape": [4, 4], "external": "FILESTORE:"},
            "x": {"source": "x", "dtype": "integer", "shape": []},
        },
        object_keys={"cam": ["img"], "x": ["x"]},
    )
    pairs.append(("descriptor", desc.descriptor_doc))
    resource = bundle.compose_resource(spec="NPY_SEQ", root="", resource_path="npy/scan", resource_kwargs={})
    pairs.append(("resource", resource.resource_doc))
    datums = [resource.compose_datum(datum_kwargs={"index": i}) for i in range(3)]
    page = {
        "resource": resource.resource_doc["uid"],
        "datum_id": [d["datum_id"] for d in datums],
        "datum_kwargs": {"index": [0, 1, 2]},
    }
    pairs.append(("datum_page", page))
    pairs.append(
        (
            "event_page",
            desc.compose_event_page(
                data={"img": [d["datum_id"] for d in datums], "x": [1, 2, 3]},
                timestamps={"img": [1, 2, 3], "x": [1, 2, 3]},
                filled={"img": [False, False, False]},
                seq_num=[1, 2, 3],
            ),
        )
    )
    pairs.append(("stop", bundle.compose_stop()))

    _assert_parity(pairs, tmp_path / "run.jsonl")
    run, _, _ = _ours(pairs, tmp_path / "run.jsonl")
    (source,) = run.external.values()
    assert source.original_location == "npy/scan"
    assert source.doc["uri"] == "npy/scan"
    assert source.doc["mimetype"] == "multipart/related;type=application/x-npy"
    # Three consecutive StreamDatums, merged into one as TiledWriter merges them.
    assert [d["indices"] for d in source.stream_datums] == [{"start": 0, "stop": 3}]
    assert [d["seq_nums"] for d in source.stream_datums] == [{"start": 1, "stop": 4}]


def test_current_and_old_stream_resources(tmp_path: Path) -> None:
    bundle = compose_run()
    pairs: list[tuple[str, dict]] = [("start", bundle.start_doc)]
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={
            "a": {"source": "s", "dtype": "array", "shape": [2], "external": "STREAM:", "dtype_numpy": "<i4"},
            "b": {"source": "s", "dtype": "array", "shape": [2], "external": "STREAM:"},
            "seq_num": {"source": "s", "dtype": "integer", "shape": []},
        },
    )
    pairs.append(("descriptor", desc.descriptor_doc))
    current = bundle.compose_stream_resource(
        mimetype="application/x-hdf5",
        uri="file://localhost/abs/a.h5",
        data_key="a",
        parameters={"dataset": "/a", "chunk_shape": [10]},
    )
    pairs.append(("stream_resource", current.stream_resource_doc))
    old = {
        "uid": "old-sres",
        "run_start": bundle.start_doc["uid"],
        "data_key": "b",
        "spec": "AD_HDF5",
        "root": "",
        "resource_path": "rel/b.h5",
        "resource_kwargs": {"frame_per_point": 2},
        "path_semantics": "posix",
    }
    pairs.append(("stream_resource", old))
    for i in range(2):
        pairs.append(
            (
                "stream_datum",
                current.compose_stream_datum(indices={"start": i, "stop": i + 1}, descriptor=desc.descriptor_doc),
            )
        )
        pairs.append(
            (
                "stream_datum",
                {
                    "uid": f"old-sres/{i}",
                    "stream_resource": "old-sres",
                    "descriptor": desc.descriptor_doc["uid"],
                    "indices": {"start": i, "stop": i + 1},
                    "seq_nums": {"start": i + 1, "stop": i + 2},
                },
            )
        )
        pairs.append(("event", desc.compose_event(data={"seq_num": 7 * i}, timestamps={"seq_num": 1.5}, seq_num=i + 1)))
    pairs.append(("stop", bundle.compose_stop()))

    _assert_parity(pairs, tmp_path / "run.jsonl")
    run, rows, _ = _ours(pairs, tmp_path / "run.jsonl")
    assert run.external["old-sres"].original_location == "rel/b.h5"
    assert run.external["old-sres"].doc["parameters"]["multiplier"] == 2
    assert run.external["old-sres"].stream == "primary"
    assert rows["primary"][1] == {"seq_num": 2, "time": rows["primary"][1]["time"], "seq_num_": 7, "ts_seq_num_": 1.5}


def test_run_without_stop_still_converts_late_datums(tmp_path: Path, h5file: Path) -> None:
    pairs = [p for p in _legacy_hdf5_run(h5file) if p[0] != "stop"]
    # Move the first datum after its event: RunNormalizer converts it only when the run ends.
    first_datum = next(i for i, p in enumerate(pairs) if p[0] == "datum")
    pairs.insert(first_datum + 1, pairs.pop(first_datum))
    run, _, _ = _ours(pairs, tmp_path / "run.jsonl")
    assert run.stop is None
    (datums,) = [source.stream_datums for source in run.external.values()]
    # All five are converted, the late one at the end; RunNormalizer's frame counter gives them the
    # ranges (0, 2), (2, 3), (3, 4), (4, 5) and then (5, 6), which continue each other: merged.
    assert [(d["indices"]["start"], d["indices"]["stop"]) for d in datums] == [(0, 6)]
    assert datums[0]["uid"] == pairs[first_datum + 1][1]["datum_id"]
    assert run.notes == ["Renamed data_key 'time' to 'time_' in stream primary"]


def test_reserved_key_clash_is_a_problem_with_a_place(tmp_path: Path) -> None:
    bundle = compose_run()
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={k: {"source": "s", "dtype": "number", "shape": []} for k in ("time", "time_")},
    )
    documents = _documents([("start", bundle.start_doc), ("descriptor", desc.descriptor_doc)])
    with pytest.raises(IngestError) as caught:
        normalize_run(documents, tmp_path / "run.jsonl")
    problem = caught.value.problem
    assert (problem.line, problem.name, problem.uid) == (2, "descriptor", desc.descriptor_doc["uid"])
    assert "Cannot rename time to time_" in problem.reason


def test_row_pass_speed_and_bounded_blocks(tmp_path: Path) -> None:
    """The hot path: plain events cost a few µs each (TiledWriter: ~170 µs)."""
    import time

    bundle = compose_run()
    keys = [f"k{i}" for i in range(8)]
    desc = bundle.compose_descriptor(
        name="primary", data_keys={k: {"source": k, "dtype": "number", "shape": []} for k in keys}
    )
    n = 100_000
    docs = [Document("start", bundle.start_doc, 1), Document("descriptor", desc.descriptor_doc, 2)]
    for i in range(n):
        docs.append(
            Document(
                "event",
                {
                    "uid": str(i),
                    "descriptor": desc.descriptor_doc["uid"],
                    "time": float(i),
                    "seq_num": i + 1,
                    "data": {k: float(i) for k in keys},
                    "timestamps": {k: float(i) for k in keys},
                    "filled": {},
                },
                i + 3,
            )
        )
    docs.append(Document("stop", bundle.compose_stop(), n + 3))
    started = time.perf_counter()
    run = normalize_run(docs, tmp_path / "run.jsonl")
    skeleton = time.perf_counter() - started
    started = time.perf_counter()
    blocks = _row_blocks(docs)
    rows = time.perf_counter() - started
    # 18 columns: chunks of 50,000 rows for the writer, built in blocks of a fifth of that.
    assert [block.length for _, block in blocks] == [10_000] * 10
    assert all(isinstance(column, numpy.ndarray) for _, block in blocks for column in block.columns.values())
    assert blocks[3][1].rows()[5] == {
        "seq_num": 30_006,
        "time": 30_005.0,
        **{k: 30_005.0 for k in keys},
        **{f"ts_{k}": 30_005.0 for k in keys},
    }
    assert run.streams["primary"].row_count == n
    budget = 10e-6 if not os.environ.get("CI_SLOW") else 50e-6
    assert skeleton / n < budget and rows / n < budget, (skeleton / n, rows / n)
