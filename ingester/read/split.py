"""Split the documents of one file by run: tell which run each document belongs to.

A document names its run directly (`start.uid`, `run_start` of descriptors, stop, resources and
stream resources) or through a document that came before it (an event through its descriptor, a
datum through its resource, a stream datum through its stream resource). When neither works (a
legacy resource without `run_start`, or a reference to something unknown) the document goes to the
run that is open at that point, so the validator can say what is wrong with it. Nothing here
judges whether a document is valid.
"""

from __future__ import annotations

from ingester.runs import Document

__all__ = ["RunSplitter"]


class RunSplitter:
    """Assign each document, in file order, to the uid of its run (None before any start)."""

    def __init__(self) -> None:
        self.current: str | None = None
        self._owner: dict[str, str] = {}  # descriptor / resource / stream_resource uid -> run uid
        self._runs: set[str] = set()

    def assign(self, document: Document) -> str | None:
        name, doc = document.name, document.doc
        owner = self._owner
        if name == "event" or name == "event_page":
            ref = doc.get("descriptor")
        elif name == "stream_datum":
            ref = doc.get("stream_resource")
        elif name == "datum" or name == "datum_page":
            ref = doc.get("resource")
        elif name == "start":
            uid = doc.get("uid")
            if isinstance(uid, str):
                self._runs.add(uid)
                self.current = uid
            return self.current
        else:
            run = doc.get("run_start")
            run = run if isinstance(run, str) and run in self._runs else self.current
            uid = doc.get("uid")
            if isinstance(uid, str) and name in ("descriptor", "resource", "stream_resource"):
                owner.setdefault(uid, run)
            return run
        if isinstance(ref, str):
            return owner.get(ref, self.current)
        return self.current
