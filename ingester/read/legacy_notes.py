"""Which legacy forms (`schemas.legacy_forms`) a run used, as lines for its `_ingest.legacy` metadata.

`LegacyNotes` is shown the raw documents that may hold a legacy form (resources, stream resources,
descriptors, and the events normalize hands to RunNormalizer anyway) and keeps one line per form:
its name, what was done with it and the first line of the file where it was found. It only looks:
the forms are converted by normalize (RunNormalizer's rules), never here.
"""

from __future__ import annotations

import itertools
from typing import Any

from ingester.runs import DocumentNumber
from schemas.legacy_forms import LEGACY_BY_NAME

__all__ = ["LegacyNotes"]


class LegacyNotes:
    """The legacy forms seen in one run, in the order they were first seen."""

    def __init__(self) -> None:
        self.found: dict[str, str] = {}
        self.streamed: set[str] = set()  # keys labelled STREAM: in some descriptor

    def note(self, name: str, line: int, detail: str = "") -> None:
        if name not in self.found:
            form = LEGACY_BY_NAME[name]
            where = (str(line) if isinstance(line, DocumentNumber) else f"line {line}") + (
                f", {detail}" if detail else ""
            )
            self.found[name] = f"{name}: {form.action}: {form.done} ({where})"

    def resource(self, doc: dict[str, Any], line: int) -> None:
        if "id" in doc:
            self.note("resource-id", line, f"resource {doc.get('uid')}")

    def stream_resource(self, doc: dict[str, Any], line: int) -> None:
        if "mimetype" not in doc:
            self.note("stream-resource-pre-1.20", line, f"stream_resource {doc.get('uid')}")

    def descriptor(self, doc: dict[str, Any], line: int) -> None:
        data_keys = doc.get("data_keys", {})
        configurations = [c.get("data_keys", {}).values() for c in doc.get("configuration", {}).values()]
        for spec in itertools.chain(data_keys.values(), *configurations):
            if "shape" in spec and spec["shape"] is None:
                self.note("shape-null", line)
            if "dtype_str" in spec or "dtype_descr" in spec:
                self.note("dtype-str", line)
        for key, spec in data_keys.items():
            external = spec.get("external")
            if isinstance(external, str) and external.startswith("STREAM:"):
                self.streamed.add(key)
            elif external == "FILESTORE":
                self.note("filestore-without-colon", line, f"key {key!r}")

    def event(self, doc: dict[str, Any], line: int) -> None:
        """An event (or event page) that may hold Datum ids or a `filled` map."""
        filled = doc.get("filled") or {}
        for key, value in filled.items():
            values = value if isinstance(value, list) else [value]
            if any(isinstance(v, str) for v in values):
                self.note("filled-datum-ids", line, f"key {key!r}")
        for key in self.streamed.intersection(doc["data"]):
            if filled.get(key) is not True:
                self.note("stream-key-with-datums", line, f"key {key!r}")

    def lines(self) -> list[str]:
        return list(self.found.values())
