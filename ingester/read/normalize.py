"""Normalize one run's documents to the current event-model schema, fed one document at a time.

`RunNormalization` is given a run's documents in file order (`feed`) and returns a
`NormalizedRun` (`finish`): everything but the event rows (rows.py builds those from the same
documents). It has the semantics of bluesky-tiled-plugins' `RunNormalizer`, TiledWriter's first
stage:

- descriptors are normalized by our own `DescriptorNormalizer` (same rules, proven by a parity
  test); a repeated descriptor of a stream is kept as a configuration update;
- StreamDatums need no normalization: each is attached to its StreamResource directly, and
  consecutive ones (indices and seq_nums continuing each other) are merged as TiledWriter merges
  them before its consolidators see them;
- legacy documents (Resource, Datum, DatumPage, StreamResources of any form, and events that may
  reference a Datum or carry `filled`) go through `RunNormalizer` itself. It is imported and
  created only when the first of them arrives, and then replays the run's start and descriptors:
  a run without external documents never imports bluesky-tiled-plugins.

A run without a stop document still gets its pending Datums converted (TiledWriter would convert
them only at the stop); its `stop` stays None. This stage never resolves a location:
`ExternalSource.original_location` and the StreamResource `uri` stay as the document wrote them
(`RunNormalizer` would make a relative path absolute against the working directory). It never
modifies the documents it is given, never reads external files and never talks to Tiled.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ingester.problems import IngestError, Problem
from ingester.read.legacy_notes import LegacyNotes
from ingester.read.normalize_descriptor import RESERVED_DATA_KEYS, DataKeySets, DescriptorNormalizer
from ingester.runs import Document, ExternalSource, NormalizedRun, StreamInfo
from schemas import check_document

__all__ = ["RunNormalization", "normalize_run", "legacy_location", "merge_stream_datum", "RESERVED_DATA_KEYS"]

# Documents that make the run need RunNormalizer's conversions.
_LEGACY_DOCUMENTS = frozenset({"resource", "datum", "datum_page", "stream_resource"})
_NAMES = frozenset(
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


def merge_stream_datum(datums: list[dict[str, Any]], doc: dict[str, Any]) -> None:
    """Append `doc` to `datums`, merged into the last one when it continues it exactly.

    Continuing means the same descriptor and stream resource, and indices and seq_nums that start
    where the last one's stop; the merged document is what TiledWriter's `concatenate_stream_datums`
    makes of the two. A consolidator fed the merged document ends in the same state as one fed both.
    """
    if datums:
        last = datums[-1]
        if (
            last["indices"]["stop"] == doc["indices"]["start"]
            and last["seq_nums"]["stop"] == doc["seq_nums"]["start"]
            and last["descriptor"] == doc["descriptor"]
            and last["stream_resource"] == doc["stream_resource"]
        ):
            datums[-1] = {
                "uid": doc["uid"],
                "stream_resource": doc["stream_resource"],
                "descriptor": doc["descriptor"],
                "indices": {"start": last["indices"]["start"], "stop": doc["indices"]["stop"]},
                "seq_nums": {"start": last["seq_nums"]["start"], "stop": doc["seq_nums"]["stop"]},
            }
            return
    datums.append(doc)


class RunNormalization:
    """The normalization of one run, fed its documents in file order."""

    def __init__(self, path: Path):
        self.path = path
        self.start: dict[str, Any] | None = None
        self.stop: dict[str, Any] | None = None
        self.streams: dict[str, StreamInfo] = {}
        self.stream_of: dict[str, str] = {}  # descriptor uid -> stream name
        self.external: dict[str, ExternalSource] = {}
        self.descriptors = DescriptorNormalizer()
        self.keys = DataKeySets()
        self.legacy = LegacyNotes()  # the legacy forms this run used, for `_ingest.legacy`
        self._raw_descriptors: list[dict[str, Any]] = []  # replayed into RunNormalizer if it is needed
        self._origins: dict[str, tuple[str, int, str, str]] = {}  # uid -> (name, line, location, spec)
        self._legacy: _Legacy | None = None
        self._last: Document | None = None
        self._info_of: dict[str, StreamInfo] = {}  # descriptor uid -> its stream

    # -- feeding --------------------------------------------------------------------------------

    def feed(self, document: Document) -> None:
        """Take the next document of the run; raises `IngestError` (with its place) if it cannot."""
        self._last = document
        name = document.name
        try:
            if name == "event" or name == "event_page":
                self._event(document)
            elif name == "stream_datum":
                self._stream_datum(document.doc)
            elif name == "descriptor":
                self._descriptor(document.doc)
                self.legacy.descriptor(document.doc, document.line)
                if self._legacy is not None:
                    self._legacy.feed(document)
            elif name in _LEGACY_DOCUMENTS:
                self._legacy_document(document)
            elif name == "start":
                _check_schema("start", document.doc)
                self.start = document.doc
            elif name == "stop":
                self._stop(document)
            elif name not in _NAMES:
                raise IngestError(Problem(str(self.path), document.line, f"unknown document name {name!r}", name))
        except IngestError:
            raise
        except Exception as error:
            raise _fail(self.path, document, error) from error

    def _event(self, document: Document) -> None:
        doc = document.doc
        external_only = self.keys.external_only
        if doc.get("filled") or (external_only and not doc["data"].keys().isdisjoint(external_only)):
            self.legacy.event(doc, document.line)
            self._legacy_for(document).feed(document)
        info = self._info_of.get(doc["descriptor"])
        if info is None:
            raise _unknown_descriptor(self.path, document)
        info.row_count += 1 if document.name == "event" else len(doc["seq_num"])

    def _legacy_document(self, document: Document) -> None:
        name, doc = document.name, document.doc
        if name == "resource":
            self._origins[doc["uid"]] = (name, document.line, legacy_location(doc), doc.get("spec", ""))
            self.legacy.resource(doc, document.line)
        elif name == "stream_resource":
            self.legacy.stream_resource(doc, document.line)
            location = doc["uri"] if "mimetype" in doc else legacy_location(doc)
            self._origins[doc["uid"]] = (name, document.line, location, doc.get("spec", ""))
        self._legacy_for(document).feed(document)

    def _stop(self, document: Document) -> None:
        _check_schema("stop", {**document.doc, "_run_normalizer_notes": list(self.descriptors.notes)})
        self.stop = document.doc
        if self._legacy is not None:
            self._legacy.feed(document)

    def finish(self) -> NormalizedRun:
        """The run normalized. A run without stop has its pending Datums converted here."""
        if self.start is None:
            raise IngestError(Problem(str(self.path), None, "the run has no start document"))
        if self.stop is None and self._legacy is not None and self._last is not None:
            flush = {"uid": "-", "time": 0.0, "run_start": self.start["uid"], "exit_status": "success"}
            document = Document("stop", flush, self._last.line)
            try:
                self._legacy.feed(document)
            except IngestError:
                raise
            except Exception as error:
                raise _fail(self.path, document, error) from error
        return NormalizedRun(
            uid=self.start["uid"],
            path=self.path,
            start=self.start,
            stop=self.stop,
            streams=self.streams,
            external=self.external,
            notes=list(self.descriptors.notes),
            legacy=self.legacy.lines(),
        )

    # -- what RunNormalizer would emit ----------------------------------------------------------------

    def _descriptor(self, raw: dict[str, Any]) -> None:
        doc = self.descriptors(raw)
        self.keys.add_descriptor(raw)
        self._raw_descriptors.append(raw)
        name = doc["name"]
        self.stream_of[doc["uid"]] = name
        info = self.streams.get(name)
        if info is None:
            info = self.streams[name] = StreamInfo(name=name, descriptor=doc, descriptor_uids=[doc["uid"]])
            self._info_of[doc["uid"]] = info
            return
        self._info_of[doc["uid"]] = info
        # A repeated descriptor of a stream: keep what TiledWriter keeps as `_config_updates`.
        info.descriptor_uids.append(doc["uid"])
        update: dict[str, Any] = {"uid": doc["uid"], "time": doc["time"]}
        if doc.get("configuration"):
            update["configuration"] = doc["configuration"]
        info.config_updates.append(update)

    def _stream_resource(self, doc: dict[str, Any]) -> None:
        """A StreamResource as RunNormalizer emits it (from a StreamResource or a Resource)."""
        origin_uid, stream = self._origin(doc["uid"], doc["data_key"])
        source_name, line, location, spec = self._origins[origin_uid]
        doc["uri"] = location  # RunNormalizer's may be resolved against the working directory
        self.external[doc["uid"]] = ExternalSource(
            doc=doc, line=line, source_name=source_name, original_location=location, stream=stream, spec=spec
        )

    def _stream_datum(self, doc: dict[str, Any]) -> None:
        source = self.external[doc["stream_resource"]]
        if source.stream is None:
            source.stream = self.stream_of[doc["descriptor"]]
        merge_stream_datum(source.stream_datums, doc)

    def _origin(self, uid: str, data_key: str) -> tuple[str, str | None]:
        """The uid of the document a StreamResource came from, and its stream if already known.

        A StreamResource made from a Resource has the uid f"{resource}-{descriptor}-{data_key}".
        """
        if uid in self._origins:
            return uid, None
        head = uid.removesuffix(f"-{data_key}")
        for desc_uid, stream in self.stream_of.items():
            resource_uid = head.removesuffix(f"-{desc_uid}")
            if resource_uid != head and resource_uid in self._origins:
                return resource_uid, stream
        raise KeyError(f"no Resource for the StreamResource {uid!r}")

    def _legacy_for(self, document: Document) -> _Legacy:
        if self._legacy is None:
            if self.start is None:
                raise IngestError(
                    Problem(str(self.path), document.line, "the run has no start document", document.name)
                )
            self._legacy = _Legacy(self, self.start, self._raw_descriptors)
        return self._legacy


class _Legacy:
    """bluesky-tiled-plugins' RunNormalizer, for the documents only it converts.

    Created when the first such document arrives; it is replayed the run's start and descriptors
    first, which is all the state it keeps from them (plain events leave none). Of what it emits,
    only StreamResources and StreamDatums are taken: start, descriptors, events and stop are ours.
    """

    def __init__(self, run: RunNormalization, start: dict[str, Any], descriptors: list[dict[str, Any]]):
        from bluesky_tiled_plugins.writing.tiled_writer import RunNormalizer

        self.run = run
        self.failure: Exception | None = None
        self.normalizer = RunNormalizer()
        self.normalizer.subscribe(self._emitted)
        self.normalizer.start(start)
        for descriptor in descriptors:
            self.normalizer.descriptor(descriptor)
        self._raise_failure()

    def feed(self, document: Document) -> None:
        getattr(self.normalizer, document.name)(document.doc)
        self._raise_failure()

    def _emitted(self, name: str, doc: dict[str, Any]) -> None:
        # RunNormalizer's dispatcher turns a callback's exception into a warning: keep it instead.
        try:
            if name == "stream_resource":
                self.run._stream_resource(doc)
            elif name == "stream_datum":
                self.run._stream_datum(doc)
        except Exception as error:  # noqa: BLE001 - re-raised by feed with a place
            self.failure = self.failure or error

    def _raise_failure(self) -> None:
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure


def _check_schema(name: str, doc: dict[str, Any]) -> None:
    """The schema check RunNormalizer makes of what it emits. Our models of the schemas answer first
    (held to event-model's by their tests); only a document they find wrong goes to event-model's
    jsonschema, for the very error RunNormalizer raises (importing it costs ~0.1 s a process)."""
    if check_document(name, doc) is None:
        return
    from event_model import DocumentNames, schema_validators

    schema_validators[DocumentNames[name]].validate(doc)


def _unknown_descriptor(path: Path, document: Document) -> IngestError:
    reason = f"unknown descriptor {document.doc.get('descriptor')!r}"
    return IngestError(Problem(str(path), document.line, reason, document.name, document.doc.get("uid")))


def _fail(path: Path, document: Document, error: Exception) -> IngestError:
    uid = document.doc.get("uid") or document.doc.get("datum_id")
    reason = f"cannot normalize: {type(error).__name__}: {error}"
    return IngestError(Problem(str(path), document.line, reason, document.name, uid))


def normalize_run(documents: Iterable[Document], path: Path) -> NormalizedRun:
    """The run of `documents` (one validated run, in file order; `path` is its file) normalized."""
    normalization = RunNormalization(path)
    for document in documents:
        normalization.feed(document)
    return normalization.finish()
