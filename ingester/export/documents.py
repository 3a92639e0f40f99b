"""A run in Tiled back as event-model documents: the inverse of the layout the writer writes.

`run_documents(tree)` yields `(name, doc)` for one run, a `RunTree` of `Part`s (`read_run` reads it
through a tiled client of a BlueskyRun 3.0 container, ingester.export.catalog_read through the
embedded catalog's adapter): the start and stop from the run's metadata (without our `_ingest`), the
descriptors from each stream's metadata (rebuilt by bluesky-tiled-plugins' `build_descriptor_docs`,
which unfolds `_config_updates`), the events as event pages read from the `internal` table(s) and the
array nodes beside them (internal arrays, and the columns the writer moved out of the table because
their names collide ignoring case: README "Layout in Tiled"), and a StreamResource and a StreamDatum
for each external node, from its data source and assets. The order is one event-model's validators
accept: start; per stream its descriptors, stream resources, event pages, stream datums; stop.

Events' uids are not kept in Tiled: each gets a uid derived from its descriptor and seq_num, so an
export is the same every time. Nothing here writes a file or knows the pack.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

__all__ = [
    "PAGE_ROWS",
    "ExternalNode",
    "Part",
    "RunTree",
    "asset_path",
    "external_nodes",
    "left_out_keys",
    "read_run",
    "run_documents",
]

# Events per event page: a page of 1,000 rows of a few columns is a line of some 100 kB, far below
# the 64 MiB a line the reader takes, and few enough lines that writing them costs little.
PAGE_ROWS = 1000
_NAMESPACE = uuid.UUID("5b1e3c1e-8f0a-4d6b-9a3e-6c0e2f7d1a42")
_RESERVED = ("seq_num", "time")
_NPY = "multipart/related;type=application/x-npy"  # data keys the writer renames with a trailing "_"


def _plain(value: Any) -> Any:
    """Tiled's metadata views as plain dicts and lists."""
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _builtin(value: Any) -> Any:
    """A cell as JSON-able builtins (numpy scalars and arrays, nested arrays of a ragged row)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list):
        return [_builtin(v) for v in value]
    return value


def _base(node: Any) -> Any:
    return getattr(node, "base", node)


def enum_name(value: Any) -> str:
    """The name of one of tiled's enum values (`StructureFamily.table` or `table` -> `table`)."""
    return str(value).split(".")[-1]


@dataclass
class Part:
    """A node of a stream as the documents need it, however it was read.

    `family`: its structure family's name; `source`: its data source (for an external node with its
    assets); `shape`: an array's (empty for a table); `read()`: its data, a table as an Arrow table
    (read through pandas, tiled's client turns list columns into strings, "[0 1 2 3]"; Arrow keeps
    every column's type), an array as numpy or ragged."""

    family: str
    source: Any
    shape: tuple
    metadata: dict
    read: Callable[[], Any]

    @property
    def management(self) -> str:
        return enum_name(self.source.management)


class ExternalNode:
    """An external node of a stream: its key, data source, and the files its assets name."""

    def __init__(self, stream: str, key: str, part: Part):
        self.stream, self.key = stream, key
        self.source = part.source
        self.shape = part.shape
        self.metadata = part.metadata
        self.assets = sorted(self.source.assets, key=lambda a: a.num or 0)

    @property
    def uris(self) -> list[str]:
        return [a.data_uri for a in self.assets if a.parameter in {"data_uris", "data_uri"}] or [
            a.data_uri for a in self.assets
        ]

    def paths(self) -> list[str]:
        return [asset_path(uri) for uri in self.uris]


def asset_path(uri: str) -> str:
    """The local path of a `file://` asset URI."""
    return unquote(urlparse(uri).path)


@dataclass
class RunTree:
    """What Tiled holds of one run, read once: its metadata, and each stream's metadata and parts."""

    metadata: dict
    streams: list[tuple[str, dict, dict[str, Part]]]  # (name, metadata, parts by key), in creation order


def read_run(root: Any, uid: str) -> RunTree:
    """The run `uid` under `root` (a tiled client), in three requests and one a stream: the run, its
    streams with their metadata, each stream's parts with their structures and data sources (a request
    a node took ~20 ms); each table's data is a request more, when the documents read it."""
    from ingester.target.clients import plain_variation

    run = plain_variation(root).new_variation(include_data_sources=True)[uid]
    streams = []
    for name, stream in run.items():
        parts = {key: _client_part(node) for key, node in _base(stream).items()}
        streams.append((name, _plain(stream.metadata), parts))
    return RunTree(_plain(run.metadata), streams)


def _client_part(node: Any) -> Part:
    family = enum_name(node.structure_family)
    read = (lambda: _read_table(node)) if family == "table" else node.read
    shape = tuple(getattr(node.structure(), "shape", ()))
    return Part(family, node.data_sources()[0], shape, _plain(node.metadata), read)


def external_nodes(tree: RunTree) -> list[ExternalNode]:
    """Every external node of the run, stream by stream."""
    found = []
    for stream_name, _, parts in tree.streams:
        for key, part in parts.items():
            if not key.startswith("internal") and part.management == "external":
                found.append(ExternalNode(stream_name, key, part))
    return found


def run_documents(tree: RunTree, page_rows: int = PAGE_ROWS) -> Iterator[tuple[str, dict]]:
    """The run's documents, in an order event-model accepts (see the module's docstring)."""
    from bluesky_tiled_plugins.exporters import build_descriptor_docs

    metadata = tree.metadata
    start = metadata["start"]
    yield "start", start
    externals = external_nodes(tree)
    left_out_of_run = left_out_keys(metadata)
    for stream_name, stream_metadata, parts in tree.streams:
        descriptors = build_descriptor_docs(stream_metadata, stream_name, start["uid"])
        left_out = [key for stream_key in left_out_of_run for key in _key_of(stream_key, stream_name)]
        for descriptor in descriptors:
            _rename_back(descriptor, _renamed_keys(metadata.get("notes", []), stream_name))
            _drop_keys(descriptor, left_out)
        for descriptor in descriptors:
            yield "descriptor", descriptor
        mine = [node for node in externals if node.stream == stream_name]
        resources = [_stream_resource(node, descriptors[0], start["uid"]) for node in mine]
        for resource, _ in resources:
            yield "stream_resource", resource
        yield from _event_pages(parts, descriptors, page_rows)
        for _, datum in resources:
            yield "stream_datum", datum
    if "stop" in metadata:
        yield "stop", metadata["stop"]


def left_out_keys(metadata: dict) -> list[str]:
    """`stream/key` of each data key the ingest left out (`--on-missing-file skip`: its external files
    were missing), as the run's `_ingest.missing` lists them. The stream's metadata still describes
    them; the documents must not, or the pack holds runs no ingest takes (an external key with no
    StreamResource and in no event)."""
    missing = (metadata.get("_ingest") or {}).get("missing") or []
    return [str(entry).partition(": ")[0] for entry in missing]


def _key_of(stream_key: str, stream: str) -> list[str]:
    key = stream_key.removeprefix(f"{stream}/")
    return [key] if key != stream_key else []


def _drop_keys(descriptor: dict, keys: list[str]) -> None:
    for key in keys:
        descriptor["data_keys"].pop(key, None)
        for names in descriptor.get("object_keys", {}).values():
            if key in names:
                names.remove(key)


def _renamed_keys(notes: list[str], stream: str) -> list[str]:
    """The data keys of `stream` that the writer renamed with a trailing `_` (`seq_num`, `time`), as its
    notes say: the documents carry them under their own names, and an ingest renames them again."""
    found = (re.fullmatch(r"Renamed data_key '(\w+)' to '\w+_' in stream (.+)", note) for note in notes)
    return [match.group(1) for match in found if match and match.group(2) == stream]


def _rename_back(descriptor: dict, names: list[str]) -> None:
    for name in names:
        if f"{name}_" in descriptor["data_keys"]:
            descriptor["data_keys"] = {
                (name if key == f"{name}_" else key): spec for key, spec in descriptor["data_keys"].items()
            }
            for keys in descriptor.get("object_keys", {}).values():
                keys[:] = [name if key == f"{name}_" else key for key in keys]


# -- events -------------------------------------------------------------------------------------


def _columns(parts: dict[str, Part], data_keys: dict) -> dict[str, Any]:
    """Every column of the stream's internal data by name: the internal table(s), and the array
    nodes that are not external (internal arrays, ragged arrays, columns moved out of the table)."""
    columns: dict[str, Any] = {}
    for key, part in parts.items():
        if part.family == "table":
            table = part.read()
            columns.update((name, _arrow_values(table.column(name))) for name in table.column_names)
        elif part.management != "external" and not data_keys.get(key, {}).get("external"):
            columns[key] = part.read()
    return columns


def _read_table(node: Any) -> Any:
    """A table node (a tiled client) as an Arrow table, asked for as an Arrow file: `to_pylist` then
    gives builtins at once."""
    import pyarrow
    from tiled.client.utils import handle_error

    response = node.context.http_client.get(
        node.item["links"]["full"], headers={"Accept": "application/vnd.apache.arrow.file"}
    )
    return pyarrow.ipc.open_file(pyarrow.py_buffer(handle_error(response).content)).read_all()


def _arrow_values(column: Any) -> list:
    """A table column as builtins; in a float column a null is NaN, as the tables store NaN (and as
    pandas and bluesky-tiled-plugins read it)."""
    import pyarrow
    import pyarrow.compute

    if pyarrow.types.is_floating(column.type) and column.null_count:
        column = pyarrow.compute.fill_null(column, float("nan"))
    return column.to_pylist()


def _timestamp_names(keys: list[str]) -> dict[str, str]:
    """The column of each kept key's timestamps, named as the writer's rows name them: `ts_<key>`,
    with `_` added while that name is taken (a data key spelled `ts_<other key>`)."""
    taken = {"seq_num", "time", *keys}
    names = {}
    for key in keys:
        name = f"ts_{key}"
        while name in taken:
            name += "_"
        taken.add(name)
        names[key] = name
    return names


def _event_pages(parts: dict[str, Part], descriptors: list[dict], page_rows: int) -> Iterator[tuple[str, dict]]:
    data_keys = descriptors[0]["data_keys"]
    columns = _columns(parts, data_keys)
    if "seq_num" not in columns:
        return
    kept = {key: f"{key}_" if key in _RESERVED else key for key in data_keys}
    kept = {key: column for key, column in kept.items() if column in columns}
    ts_names = _timestamp_names(list(kept.values()))
    seq_nums, times = _column_values(columns["seq_num"]), _column_values(columns["time"])
    values = {key: _column_values(columns[column]) for key, column in kept.items()}
    stamps = {key: _column_values(columns[ts_names[column]]) for key, column in kept.items()}
    filled = [key for key in kept if data_keys[key].get("external")]  # external values stored as data
    owner = _descriptor_of_rows(times, descriptors)
    start = 0
    while start < len(seq_nums):
        stop = min(start + page_rows, len(seq_nums))
        while stop > start + 1 and owner[stop - 1] != owner[start]:
            stop -= 1  # a page holds the events of one descriptor
        descriptor = owner[start]
        page = {
            "descriptor": descriptor,
            "uid": [str(uuid.uuid5(_NAMESPACE, f"{descriptor}/{n}")) for n in seq_nums[start:stop]],
            "seq_num": seq_nums[start:stop],
            "time": times[start:stop],
            "data": {key: column[start:stop] for key, column in values.items()},
            "timestamps": {key: column[start:stop] for key, column in stamps.items()},
        }
        if filled:
            page["filled"] = {key: [True] * (stop - start) for key in filled}
        yield "event_page", page
        start = stop


def _column_values(column: Any) -> list:
    values = column if isinstance(column, list) else column.tolist()
    if values and not isinstance(values[0], (int, float, str, bool, type(None), list)):
        values = [_builtin(v) for v in values]
    elif values and isinstance(values[0], list):
        values = _builtin(values)
    return values


def _descriptor_of_rows(times: list[float], descriptors: list[dict]) -> list[str]:
    """Each row's descriptor uid: the last of the stream's descriptors whose time is not after the row's
    (a later descriptor of a stream is a configuration update, in force from its time on)."""
    if len(descriptors) == 1:
        return [descriptors[0]["uid"]] * len(times)
    owners = []
    for time in times:
        owner = descriptors[0]["uid"]
        for descriptor in descriptors[1:]:
            if descriptor["time"] <= time:
                owner = descriptor["uid"]
        owners.append(owner)
    return owners


# -- external data ------------------------------------------------------------------------------


def _stream_resource(node: ExternalNode, descriptor: dict, start_uid: str) -> tuple[dict, dict]:
    """The StreamResource and the one StreamDatum that register `node` again as it is registered."""
    datum_shape = list(descriptor["data_keys"][node.key].get("shape") or [])
    parameters = _plain(node.source.parameters)
    # What the consolidator put in the node's metadata came from the StreamResource's parameters.
    if "spec" in node.metadata:
        parameters["spec"] = node.metadata["spec"]
    if multiplier := node.metadata.get("frame_per_point"):
        parameters["multiplier"] = multiplier  # the consolidator's datum shape then starts with it
        if not datum_shape or datum_shape[0] != multiplier:
            datum_shape = [multiplier, *datum_shape[1:]] if datum_shape[:1] == [1] else [multiplier, *datum_shape]
    stacked = len(node.shape) == len(datum_shape) + 1
    per_datum = 1 if stacked or not datum_shape or not datum_shape[0] else datum_shape[0]
    datums = node.shape[0] // per_datum if node.shape else 0
    parameters.setdefault("join_method", "stack" if stacked else "concat")
    uris, offset = node.uris, 0
    uri = uris[0]
    if node.source.mimetype == _NPY:
        # bluesky-tiled-plugins' NPY consolidator names the files `<uri>_<index>.npy` itself
        match = re.fullmatch(r"(.*)_(\d+)\.npy", uri)
        if match is None:
            raise ValueError(f"an NPY sequence file not named <prefix>_<n>.npy: {uri}")
        uri, offset = match.group(1), int(match.group(2)) // per_datum
    elif len(uris) > 1 and "template" not in parameters:
        uri, parameters["template"], first = _template(uris)
        parameters.setdefault("chunk_shape", [1])
        offset = first // per_datum
    resource_uid = str(uuid.uuid5(_NAMESPACE, f"{descriptor['uid']}/{node.key}"))
    resource = {
        "uid": resource_uid,
        "run_start": start_uid,
        "data_key": node.key,
        "mimetype": node.source.mimetype,
        "uri": uri,
        "parameters": parameters,
    }
    datum = {
        "uid": f"{resource_uid}/0",
        "stream_resource": resource_uid,
        "descriptor": descriptor["uid"],
        "indices": {"start": offset, "stop": offset + datums},
        "seq_nums": {"start": 1, "stop": datums + 1},
    }
    return resource, datum


def _template(uris: list[str]) -> tuple[str, str, int]:
    """The folder URI, a `%0Nd` file name template and its first index, for numbered files in one folder."""
    folder = os.path.dirname(uris[0]) + "/"
    names = [uri[len(folder) :] for uri in uris]
    match = re.fullmatch(r"(.*?)(\d+)(\D*)", names[0])
    if not match or any(not uri.startswith(folder) for uri in uris):
        raise ValueError(f"cannot name the files of {uris[0]}... with one template")
    prefix, digits, suffix = match.groups()
    template = f"{prefix}%0{len(digits)}d{suffix}" if digits.startswith("0") else f"{prefix}%d{suffix}"
    first = int(digits)
    if [template % (first + i) for i in range(len(names))] != names:
        raise ValueError(f"the files of {uris[0]}... are not numbered one after the other")
    return folder, template, first
