"""Helpers for the differential test: read run files on their own, feed TiledWriter fairly, and
describe a written run so that two catalogs can be compared key by key.

The loader here deliberately shares no code with `ingester.read.reader`: the reference side of the
differential test must not inherit a fault of ours. It reads the small fixture files whole.
"""

from __future__ import annotations

import copy
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy
import pandas

__all__ = [
    "with_config_update",
    "NodeSnapshot",
    "RunSnapshot",
    "absolutize",
    "assert_arrays_equal",
    "assert_runs_equal",
    "assert_tables_equal",
    "event_columns",
    "file_array",
    "load_documents",
    "snapshot_run",
    "validator_faults",
]


# -- documents, read independently of the ingester -----------------------------------------------


def load_documents(path: Path) -> list[tuple[str, dict]]:
    """Every (name, doc) of a run file: suitcase-jsonl, {"name", "doc"} lines or a JSON array of
    either form, optionally gzip-compressed. NaN/Infinity are read as Python's json writes them."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8")
    try:
        items = [json.loads(line) for line in text.splitlines() if line.strip()]
        if not all(isinstance(item, (dict, list)) and _is_pair(item) for item in items):
            raise ValueError("not one document a line")
    except ValueError:
        items = json.loads(text)
    return [_pair(item) for item in items]


def _is_pair(item: Any) -> bool:
    if isinstance(item, dict):
        return set(item) == {"name", "doc"}
    return len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], dict)


def _pair(item: Any) -> tuple[str, dict]:
    if isinstance(item, dict):
        return item["name"], item["doc"]
    return item[0], item[1]


def absolutize(documents: list[tuple[str, dict]], folder: Path) -> Iterator[tuple[str, dict]]:
    """The documents with relative external locations made absolute under `folder`.

    TiledWriter resolves a relative StreamResource `uri` or an empty Resource `root` against the
    process's working directory; rewriting them gives it the same files the ingester reads.
    """
    folder = folder.absolute()
    for name, doc in documents:
        doc = copy.deepcopy(doc)  # TiledWriter edits some documents in place (the stop's notes)
        if name == "stream_resource" and "://" not in doc["uri"] and not doc["uri"].startswith("/"):
            doc["uri"] = f"file://localhost{folder / doc['uri']}"
        elif name == "resource" and not doc.get("root"):
            doc["root"] = str(folder)
        yield name, doc


# -- a written run, described -------------------------------------------------------------------


@dataclass
class NodeSnapshot:
    """One node under a stream: what Tiled says about it, and its data read back."""

    family: str
    specs: list[tuple[str, str | None]]
    metadata: dict
    shape: tuple | None = None
    chunks: tuple | None = None
    dims: tuple | None = None
    dtype: str | None = None
    columns: list[str] | None = None
    data: Any = None
    management: str | None = None
    mimetype: str | None = None
    parameters: dict | None = None
    assets: list[tuple] = field(default_factory=list)  # (data_uri, parameter, num, is_directory)
    schema: str | None = None  # a table's Arrow schema: its columns' types, which reading as pandas may hide


@dataclass
class RunSnapshot:
    """A run container: its specs and metadata, and per stream its specs, metadata and nodes."""

    specs: list[tuple[str, str | None]]
    metadata: dict
    streams: dict[str, tuple[list, dict, dict[str, NodeSnapshot]]]


def _specs(node: Any) -> list[tuple[str, str | None]]:
    return [(spec.name, spec.version) for spec in node.specs]


def snapshot_run(run: Any, catalog_dir: Path) -> RunSnapshot:
    """Describe `run` (a tiled client, any flavour) down to its data nodes, data read back.

    Asset URIs inside the catalog's own folder (its tables, its zarr arrays) are written relative
    to it as `<catalog>/...`, so that two catalogs can be compared.
    """
    run = getattr(run, "base", run)
    streams = {}
    for stream_name in run:
        stream = getattr(run[stream_name], "base", run[stream_name])
        nodes = {key: _snapshot_node(stream[key], str(catalog_dir)) for key in stream}
        streams[stream_name] = (_specs(stream), _plain(stream.metadata), nodes)
    return RunSnapshot(specs=_specs(run), metadata=_plain(run.metadata), streams=streams)


def _snapshot_node(node: Any, catalog_dir: str) -> NodeSnapshot:
    family = str(node.structure_family).split(".")[-1]
    snap = NodeSnapshot(family=family, specs=_specs(node), metadata=_plain(node.metadata))
    source = node.data_sources()[0]
    snap.management = str(source.management).split(".")[-1]
    snap.mimetype = source.mimetype
    snap.parameters = _plain(source.parameters)
    snap.assets = [
        (asset.data_uri.replace(catalog_dir, "<catalog>"), asset.parameter, asset.num, asset.is_directory)
        for asset in source.assets
    ]
    structure = node.structure()
    if family == "table":
        snap.columns = list(node.columns)
        snap.schema = str(structure.arrow_schema_decoded)
    elif family == "array":
        snap.shape, snap.chunks, snap.dims = tuple(structure.shape), tuple(structure.chunks), structure.dims
        snap.dtype = str(structure.data_type.to_numpy_dtype())
    snap.data = node.read()
    return snap


def _plain(value: Any) -> Any:
    """Tiled's metadata wrappers as plain dicts and lists, for ==."""
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def assert_tables_equal(ours: pandas.DataFrame, theirs: pandas.DataFrame, where: str) -> None:
    """Same columns in the same order, same dtypes, same values (NaN == NaN, Inf == Inf)."""
    assert list(ours.columns) == list(theirs.columns), where
    pandas.testing.assert_frame_equal(ours, theirs, check_exact=True, obj=where)


def assert_arrays_equal(ours: Any, theirs: Any, where: str) -> None:
    ours, theirs = numpy.asarray(ours), numpy.asarray(theirs)
    assert ours.dtype == theirs.dtype, f"{where}: dtype {ours.dtype} != {theirs.dtype}"
    numpy.testing.assert_array_equal(ours, theirs, err_msg=where, strict=True)


def assert_runs_equal(one: RunSnapshot, other: RunSnapshot, where: str) -> None:
    """Two snapshots of the same run in two catalogs agree: specs, metadata minus `_ingest`, streams,
    node by node (family, specs, metadata, data source but for where its files are, structure, data).
    Asset files are compared by name: a run carried in a pack registers the pack's copies."""
    assert one.specs == other.specs, where
    strip = lambda md: {k: v for k, v in md.items() if k != "_ingest"}  # noqa: E731
    assert strip(one.metadata) == strip(other.metadata), where
    assert list(one.streams) == list(other.streams), where
    for stream, (specs, metadata, nodes) in one.streams.items():
        other_specs, other_metadata, other_nodes = other.streams[stream]
        assert (specs, metadata) == (other_specs, other_metadata), f"{where} {stream}"
        assert sorted(nodes) == sorted(other_nodes), f"{where} {stream}"
        for key, node in nodes.items():
            theirs, at = other_nodes[key], f"{where} {stream}/{key}"
            for attr in ("family", "specs", "metadata", "management", "mimetype", "columns", "schema"):
                assert getattr(node, attr) == getattr(theirs, attr), f"{at}: {attr}"
            assert (node.shape, node.chunks, node.dims, node.dtype) == (
                theirs.shape, theirs.chunks, theirs.dims, theirs.dtype,
            ), at  # fmt: skip
            if node.management == "external":  # a table's parameters name its storage: its own in each catalog
                assert node.parameters == theirs.parameters, f"{at}: parameters"
                names = [(Path(a[0]).name, *a[1:]) for a in node.assets]
                assert names == [(Path(a[0]).name, *a[1:]) for a in theirs.assets], at
            if node.family == "table":
                assert_tables_equal(node.data, theirs.data, at)
            else:
                assert_arrays_equal(node.data, theirs.data, at)


def validator_faults(run: Any) -> dict[tuple[str, str], str]:
    """What bluesky-tiled-plugins' validator finds wrong, per (stream, external key), found with its
    own per-node checks and nothing fixed or written: `validate()` only logs a structure mismatch
    (it returns False for reading errors alone), so the node checks say where the fault is."""
    from bluesky_tiled_plugins.writing.validator import validate_reading, validate_structure

    run = getattr(run, "base", run)
    faults = {}
    for stream_name in run:
        stream = getattr(run[stream_name], "base", run[stream_name])
        for key in stream:
            node = stream[key]
            if key == "internal" or str(node.data_sources()[0].management).split(".")[-1] != "external":
                continue
            try:
                validate_structure(node, fix_errors=False)
                validate_reading(node)
            except Exception as err:  # noqa: BLE001 - any fault is a finding
                faults[(stream_name, key)] = f"{type(err).__name__}: {err}"
    return faults


# -- what the documents and the files hold -----------------------------------------------------


def event_columns(documents: list[tuple[str, dict]], run_uid: str, stream: str) -> dict[str, list]:
    """The event values of one stream of one run, per data key, in seq_num order."""
    descriptors, current, rows = set(), None, []
    for name, doc in documents:
        if name == "start":
            current = doc["uid"]
        elif current != run_uid:
            continue
        elif name == "descriptor" and doc.get("name") == stream:
            descriptors.add(doc["uid"])
        elif name == "event" and doc["descriptor"] in descriptors:
            rows.append((doc["seq_num"], doc["data"]))
        elif name == "event_page" and doc["descriptor"] in descriptors:
            for i, seq_num in enumerate(doc["seq_num"]):
                rows.append((seq_num, {k: v[i] for k, v in doc["data"].items()}))
    rows.sort(key=lambda row: row[0])
    columns: dict[str, list] = {}
    for _, data in rows:
        for key, value in data.items():
            columns.setdefault(key, []).append(value)
    return columns


def file_array(info: dict, folder: Path, moved_from: str | None = None) -> numpy.ndarray:
    """The array an external key's file(s) really hold (`info` as in fixtures/expected.json).

    `moved_from` is the absolute root the documents name when the data sits under `folder` instead.
    """
    import h5py

    if info["via"] == "stream_resource":
        location = info["uri"].removeprefix("file://localhost")
    else:
        location = str(Path(info["root"] or ".", info["resource_path"]))
    if moved_from:
        location = str(Path(location).relative_to(moved_from))
    path = folder / location
    if info.get("spec") == "NPY_SEQ":
        return numpy.stack([numpy.load(f"{path}_{i}.npy") for i in range(info["file_shape"][0])])
    with h5py.File(path, "r") as fh:
        return fh[info["dataset"]][()]


def with_config_update(documents: list[tuple[str, dict]], uid: str) -> list[tuple[str, dict]]:
    """A copy of the first run of `documents` under the start uid `uid`, whose primary stream gets a
    second descriptor (detector configuration changed) before its last event: the case TiledWriter
    stores as the stream's `_config_updates`."""
    docs = copy.deepcopy(documents[: next(i for i, (n, _) in enumerate(documents) if n == "stop") + 1])
    old_uid = docs[0][1]["uid"]
    events = [i for i, (n, d) in enumerate(docs) if n == "event"]
    first = next(d for n, d in docs if n == "descriptor" and d["name"] == "primary")
    second = copy.deepcopy(first)
    second["uid"] = f"{uid[:-4]}desc"
    second["time"] = docs[events[-1]][1]["time"] - 0.001
    for device in second["configuration"].values():
        for key in device["data"]:
            if isinstance(device["data"][key], (int, float)):
                device["data"][key] += 1
    docs[events[-1]][1]["descriptor"] = second["uid"]
    docs.insert(events[-1], ("descriptor", second))
    for _, doc in docs:
        if doc.get("run_start") == old_uid:
            doc["run_start"] = uid
    docs[0][1]["uid"] = uid
    return docs
