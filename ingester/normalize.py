"""Normalize one run's documents to the current event-model schema, in two passes.

`normalize_run` (the skeleton pass) turns legacy forms into current ones with the semantics of
bluesky-tiled-plugins' `RunNormalizer`, which it drives for everything but plain events: descriptors
(reserved data keys `time`/`seq_num` renamed, `dtype_str`/`dtype_descr` -> `dtype_numpy`, shape
None -> (), `object_name`), Resource/Datum/DatumPage -> StreamResource/StreamDatum, old
StreamResources, and the notes of what it changed. It counts rows per stream but keeps no event.

`iter_row_batches` (the row pass) reads the same documents again and yields the internal table rows
exactly as TiledWriter's `_RunWriter.event` builds them, in bounded batches, with its own fast code:
driving `RunNormalizer` per event (a deep copy and a schema validation each) is what makes
TiledWriter slow.

This stage never resolves a location: `ExternalSource.original_location` and the StreamResource
`uri` stay as the document wrote them (`RunNormalizer` would make a relative path absolute against
the working directory). It never reads external files and never talks to Tiled.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bluesky_tiled_plugins.writing.tiled_writer import RunNormalizer
from event_model import unpack_event_page

from .problems import IngestError, Problem
from .runs import Document, ExternalSource, NormalizedRun, StreamInfo

__all__ = ["normalize_run", "iter_row_batches", "RESERVED_DATA_KEYS"]

# Data keys that would collide with the table's own columns; RunNormalizer appends "_".
RESERVED_DATA_KEYS = ("time", "seq_num")


def legacy_location(doc: dict[str, Any]) -> str:
    """A Resource's (or pre-1.20 StreamResource's) `root` joined with `resource_path`, unresolved.

    The join is RunNormalizer's (a leading `/` on the path does not discard the root; a trailing
    `/`, the directory-URI convention, is kept) without its final step against the working directory.
    """
    path = doc.get("resource_path", "")
    root = doc.get("root")
    if not root:
        return path
    return posixpath.join(root + ("/" if path.startswith("/") else ""), path.lstrip("/"))


class _KeySets:
    """The run-wide internal and external data key names (after renaming), as RunNormalizer keeps them.

    `external_only` holds the names that are external in some descriptor and internal in none, plus
    the raw reserved names that would be renamed into one of them: an event carrying any of these may
    reference a Datum, so the skeleton pass hands it to RunNormalizer.
    """

    def __init__(self) -> None:
        self.internal: set[str] = set()
        self.external: set[str] = set()
        self.external_only: set[str] = set()

    def add_descriptor(self, descriptor: dict[str, Any]) -> None:
        for key, spec in descriptor.get("data_keys", {}).items():
            name = f"{key}_" if key in RESERVED_DATA_KEYS else key
            (self.external if "external" in spec else self.internal).add(name)
        self.external_only = self.external - self.internal
        for key in RESERVED_DATA_KEYS:
            if f"{key}_" in self.external_only:
                self.external_only.add(key)


class _Skeleton:
    """Collects what RunNormalizer emits into a `NormalizedRun` (all but the event rows)."""

    def __init__(self, origins: dict[str, tuple[str, int, str]]):
        self.origins = origins  # resource/stream_resource uid -> (name, line, original location)
        self.start_doc: dict[str, Any] | None = None
        self.stop_doc: dict[str, Any] | None = None
        self.streams: dict[str, StreamInfo] = {}
        self.stream_of: dict[str, str] = {}  # descriptor uid -> stream name
        self.external: dict[str, ExternalSource] = {}
        self.notes: list[str] = []
        self.synthetic_stop = False
        self.failure: Exception | None = None

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        # RunNormalizer's dispatcher turns a callback's exception into a warning: keep it instead.
        try:
            getattr(self, name)(doc)
        except Exception as error:  # noqa: BLE001 - re-raised by normalize_run with a place
            self.failure = self.failure or error

    def start(self, doc: dict[str, Any]) -> None:
        self.start_doc = doc

    def stop(self, doc: dict[str, Any]) -> None:
        self.notes = list(doc.pop("_run_normalizer_notes", []))
        if not self.synthetic_stop:
            self.stop_doc = doc

    def descriptor(self, doc: dict[str, Any]) -> None:
        name = doc["name"]
        self.stream_of[doc["uid"]] = name
        info = self.streams.get(name)
        if info is None:
            self.streams[name] = StreamInfo(name=name, descriptor=doc, descriptor_uids=[doc["uid"]])
            return
        # A repeated descriptor of a stream: keep what TiledWriter keeps as `_config_updates`.
        info.descriptor_uids.append(doc["uid"])
        update: dict[str, Any] = {"uid": doc["uid"], "time": doc["time"]}
        if doc.get("configuration"):
            update["configuration"] = doc["configuration"]
        info.config_updates.append(update)

    def event(self, doc: dict[str, Any]) -> None:
        self.streams[self.stream_of[doc["descriptor"]]].row_count += 1

    def stream_resource(self, doc: dict[str, Any]) -> None:
        origin_uid, stream = self._origin(doc["uid"], doc["data_key"])
        source_name, line, location = self.origins[origin_uid]
        doc["uri"] = location  # RunNormalizer's may be resolved against the working directory
        self.external[doc["uid"]] = ExternalSource(
            doc=doc, line=line, source_name=source_name, original_location=location, stream=stream
        )

    def stream_datum(self, doc: dict[str, Any]) -> None:
        source = self.external[doc["stream_resource"]]
        if source.stream is None:
            source.stream = self.stream_of[doc["descriptor"]]
        source.stream_datums.append(doc)

    def _origin(self, uid: str, data_key: str) -> tuple[str, str | None]:
        """The uid of the document a StreamResource came from, and its stream if already known.

        A StreamResource made from a Resource has the uid f"{resource}-{descriptor}-{data_key}".
        """
        if uid in self.origins:
            return uid, None
        head = uid.removesuffix(f"-{data_key}")
        for desc_uid, stream in self.stream_of.items():
            resource_uid = head.removesuffix(f"-{desc_uid}")
            if resource_uid != head and resource_uid in self.origins:
                return resource_uid, stream
        raise KeyError(f"no Resource for the StreamResource {uid!r}")


def _fail(path: Path, document: Document, error: Exception) -> IngestError:
    uid = document.doc.get("uid") or document.doc.get("datum_id")
    reason = f"cannot normalize: {type(error).__name__}: {error}"
    return IngestError(Problem(str(path), document.line, reason, document.name, uid))


def normalize_run(documents: Iterable[Document], path: Path) -> NormalizedRun:
    """The skeleton pass: the run normalized, with rows counted per stream but no rows kept.

    `documents` belong to one validated run, in file order; `path` is its run file (for problems).
    A run without a stop document still gets its pending Datums converted (TiledWriter would
    convert them only at the stop); its `stop` stays None.
    """
    origins: dict[str, tuple[str, int, str]] = {}
    skeleton = _Skeleton(origins)
    normalizer = RunNormalizer()
    normalizer.subscribe(skeleton)
    keys = _KeySets()
    streams = skeleton.streams
    stream_of = skeleton.stream_of

    def feed(document: Document) -> None:
        try:
            getattr(normalizer, document.name)(document.doc)
        except Exception as error:
            raise _fail(path, document, error) from error
        if skeleton.failure is not None:
            raise _fail(path, document, skeleton.failure) from skeleton.failure

    last: Document | None = None
    for document in documents:
        last = document
        name, doc = document.name, document.doc
        if name == "event":
            # Without `filled` and without a key that may reference a Datum, RunNormalizer would
            # only emit the event: count it here.
            if not doc.get("filled") and doc["data"].keys().isdisjoint(keys.external_only):
                streams[_stream(stream_of, document, path)].row_count += 1
                continue
        elif name == "event_page":
            if not doc.get("filled") and doc["data"].keys().isdisjoint(keys.external_only):
                streams[_stream(stream_of, document, path)].row_count += len(doc["seq_num"])
                continue
        elif name == "descriptor":
            keys.add_descriptor(doc)
        elif name == "resource":
            origins[doc["uid"]] = (name, document.line, legacy_location(doc))
        elif name == "stream_resource":
            location = doc["uri"] if "mimetype" in doc else legacy_location(doc)
            origins[doc["uid"]] = (name, document.line, location)
        elif name not in _NORMALIZER_DOCUMENTS:
            raise IngestError(
                Problem(str(path), document.line, f"unknown document name {name!r}", name)
            )
        feed(document)

    if skeleton.start_doc is None:
        raise IngestError(Problem(str(path), None, "the run has no start document"))
    if skeleton.stop_doc is None and last is not None:
        # Flush Datums referenced before they arrived; the stop RunNormalizer emits is dropped.
        skeleton.synthetic_stop = True
        run_start = skeleton.start_doc["uid"]
        flush = {"uid": "-", "time": 0.0, "run_start": run_start, "exit_status": "success"}
        feed(Document("stop", flush, last.line))

    return NormalizedRun(
        uid=skeleton.start_doc["uid"],
        path=path,
        start=skeleton.start_doc,
        stop=skeleton.stop_doc,
        streams=skeleton.streams,
        external=skeleton.external,
        notes=skeleton.notes,
    )


_NORMALIZER_DOCUMENTS = frozenset(
    {
        "start",
        "stop",
        "descriptor",
        "event",
        "event_page",
        "resource",
        "datum",
        "datum_page",
        "stream_resource",
        "stream_datum",
    }
)


def _stream(stream_of: dict[str, str], document: Document, path: Path) -> str:
    try:
        return stream_of[document.doc["descriptor"]]
    except KeyError:
        reason = f"unknown descriptor {document.doc.get('descriptor')!r}"
        raise IngestError(
            Problem(str(path), document.line, reason, document.name, document.doc.get("uid"))
        ) from None


def _general_row(doc: dict[str, Any], keys: _KeySets) -> dict[str, Any]:
    """One table row built like RunNormalizer.event + _RunWriter.event, for any event.

    Reserved keys move to the end under their new name; a key is kept if it is internal and not
    marked unfilled, or external and marked filled.
    """
    data = dict(doc["data"])
    timestamps = dict(doc["timestamps"])
    filled = dict(doc.get("filled") or {})
    for name in RESERVED_DATA_KEYS:
        for mapping in (data, timestamps, filled):
            if name in mapping:
                mapping[f"{name}_"] = mapping.pop(name)
    internal, external = keys.internal, keys.external

    def kept(key: str) -> bool:
        return bool(
            (key in internal and filled.get(key, True))
            or (key in external and filled.get(key, False))
        )

    row = {"seq_num": doc["seq_num"], "time": doc["time"]}
    row.update((k, v) for k, v in data.items() if kept(k))
    row.update((f"ts_{k}", v) for k, v in timestamps.items() if kept(k))
    return row


def iter_row_batches(
    documents: Iterable[Document], run: NormalizedRun, batch_rows: int = 50_000
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The row pass: yield (stream name, rows) with at most `batch_rows` rows each.

    Rows are {"seq_num", "time", **internal data, **{"ts_" + key: timestamp}} in TiledWriter's key
    order; event pages are expanded. A stream's rows come in file order; memory holds at most one
    batch per stream.
    """
    stream_of = {uid: info.name for info in run.streams.values() for uid in info.descriptor_uids}
    keys = _KeySets()
    internal = keys.internal  # grows in place as descriptors arrive, as in RunNormalizer
    buffers: dict[str, list[dict[str, Any]]] = {name: [] for name in run.streams}
    ts_names: dict[str, str] = {}  # data key -> "ts_" + data key

    for document in documents:
        name, doc = document.name, document.doc
        if name == "event":
            stream = stream_of.get(doc["descriptor"]) or _stream(stream_of, document, run.path)
            data, timestamps = doc["data"], doc["timestamps"]
            if not doc.get("filled") and data.keys() <= internal and timestamps.keys() <= internal:
                row = {"seq_num": doc["seq_num"], "time": doc["time"], **data}
                for key, value in timestamps.items():
                    column = ts_names.get(key)
                    if column is None:
                        column = ts_names[key] = f"ts_{key}"
                    row[column] = value
            else:
                row = _general_row(doc, keys)
            buffer = buffers[stream]
            buffer.append(row)
            if len(buffer) >= batch_rows:
                yield stream, buffer
                buffers[stream] = []
        elif name == "event_page":
            stream = _stream(stream_of, document, run.path)
            for row in _page_rows(doc, keys):
                buffer = buffers[stream]
                buffer.append(row)
                if len(buffer) >= batch_rows:
                    yield stream, buffer
                    buffers[stream] = []
        elif name == "descriptor":
            keys.add_descriptor(doc)

    for stream, buffer in buffers.items():
        if buffer:
            yield stream, buffer


def _page_rows(page: dict[str, Any], keys: _KeySets) -> Iterator[dict[str, Any]]:
    data, timestamps = page["data"], page["timestamps"]
    internal = keys.internal
    if page.get("filled") or not (data.keys() <= internal and timestamps.keys() <= internal):
        for event in unpack_event_page(page):
            yield _general_row(event, keys)
        return
    columns = ("seq_num", "time", *data, *(f"ts_{k}" for k in timestamps))
    for values in zip(page["seq_num"], page["time"], *data.values(), *timestamps.values()):
        yield dict(zip(columns, values))
