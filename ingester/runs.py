"""Typed values passed between the pipeline's stages.

`Document` comes out of the reader; `NormalizedRun` out of normalize (with external locations
filled in by resolve) and into the writer; `ExternalNodePlan` out of the external planning (a data
source checked against the files) and into the writer. Nothing here reads files or talks to Tiled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Document", "DocumentNumber", "ExternalSource", "StreamInfo", "NormalizedRun", "ExternalNodePlan"]


class DocumentNumber(int):
    """A position counted in documents, for a format without lines (msgpack): 1 is the first document.

    It is an int wherever a line number is (sorted, stored in the ledger and the JSON report as a
    number) and reads `document N` wherever a position is rendered (`path:document N: ...`), so a
    problem in a msgpack file is never shown as a line.
    """

    __slots__ = ()

    def __str__(self) -> str:
        return f"document {int(self)}"

    def __format__(self, spec: str) -> str:
        return str(self) if not spec else int.__format__(self, spec)

    def __reduce__(self):
        return (DocumentNumber, (int(self),))


@dataclass(slots=True)
class Document:
    """One event-model document as read from a run file, with the position it starts at: the line
    (1-based), or a `DocumentNumber` for msgpack."""

    name: str
    doc: dict[str, Any]
    line: int


@dataclass
class ExternalSource:
    """One normalized StreamResource (event-model 1.24 form) and the StreamDatums that index it.

    `line` and `source_name` point at the document in the run file it came from (a legacy
    `resource` or a `stream_resource`), so that a refusal can name it. `original_location` is the
    location exactly as the document wrote it (a StreamResource `uri`, or a legacy Resource's `root`
    joined with `resource_path`), possibly relative: normalize never resolves it against the working
    directory, resolve does it against the data roots. `local_uri` (where the
    ingester reads the file) and `server_uri` (what Tiled registers) are set by resolve.
    """

    doc: dict[str, Any]
    line: int
    source_name: str
    original_location: str
    stream: str | None = None
    stream_datums: list[dict[str, Any]] = field(default_factory=list)
    local_uri: str | None = None
    server_uri: str | None = None
    spec: str = ""  # a legacy document's `spec` as written (RunNormalizer upper-cases it)
    local_files: list[str] = field(default_factory=list)  # the files it references, checked by resolve


@dataclass
class StreamInfo:
    """One Bluesky stream: its first (normalized) descriptor and what later ones changed."""

    name: str
    descriptor: dict[str, Any]
    descriptor_uids: list[str] = field(default_factory=list)
    config_updates: list[dict[str, Any]] = field(default_factory=list)
    row_count: int = 0


@dataclass
class NormalizedRun:
    """Everything about one run except its internal event rows, which travel as `ColumnBlock`s beside it."""

    uid: str
    path: Path
    start: dict[str, Any]
    stop: dict[str, Any] | None
    streams: dict[str, StreamInfo] = field(default_factory=dict)
    external: dict[str, ExternalSource] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    legacy: list[str] = field(default_factory=list)  # legacy forms used (schemas.legacy_forms), for `_ingest.legacy`
    missing: list[str] = field(default_factory=list)  # "stream/key: path" left out (--on-missing-file skip)


@dataclass
class ExternalNodePlan:
    """One external node to register: its stream and key, its final tiled `DataSource` (shape, chunks
    and dtype as the files hold them, asset URIs as the Tiled server sees them) and its metadata."""

    stream: str
    key: str
    data_source: Any
    metadata: dict[str, Any]
    corrections: list[str] = field(default_factory=list)  # what the files said that the documents did not
