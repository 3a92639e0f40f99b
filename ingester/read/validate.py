"""Validate stage: each document against `schemas/`, then each run as a whole.

Per run: exactly one start; at most one stop, for this run; descriptors, events, resources,
stream resources and stream datums refer to documents of this run that came earlier (datums may
come before or after the events that use them, as TiledWriter allows); event data keys match their
descriptor; seq_num increases per descriptor; external keys have their resource or stream resource;
no uid is used twice. A run without stop is `incomplete` (a state, not an error).

Memory stays nearly flat in the number of events: per event only a 64-bit digest of its uid and
its line number are kept (12 bytes), to find duplicate uids when the run ends.
This stage reads nothing but the documents it is given and writes nothing.
"""

from __future__ import annotations

from array import array
from pathlib import Path
from typing import Any

from ingester.problems import IngestError, Problem
from ingester.read.limits import limit_problem
from ingester.read.reader import read_documents
from ingester.read.reports import FileReport, RunReport
from ingester.read.split import RunSplitter
from ingester.runs import Document, DocumentNumber
from ingester.status import Verdict
from schemas import check_document

__all__ = ["RunReport", "FileReport", "RunValidator", "validate_file", "MAX_PROBLEMS_PER_RUN"]

MAX_PROBLEMS_PER_RUN = 20
_NAMES_OK = frozenset(
    (
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
    )
)


class _Stream:
    """One descriptor: which keys its events must carry (the internal ones) and may carry (all).

    An external key is served either by Datums (its events hold their ids) or by a StreamResource
    (its events leave it out), whatever its `external` label says: TiledWriter reads a `STREAM:` key
    that events fill with Datum ids, or a `FILESTORE` key served by StreamDatums, the same way.
    """

    __slots__ = ("name", "keys", "required", "external", "streamed", "carried", "last_seq", "line")

    def __init__(self, name: str, data_keys: dict[str, Any], line: int):
        self.name = name
        self.line = line
        self.keys = frozenset(data_keys)
        external = {k: v.get("external") for k, v in data_keys.items() if "external" in v}
        self.streamed = frozenset(k for k, v in external.items() if str(v).startswith("STREAM:"))
        self.external = frozenset(external)
        self.required = self.keys - self.external
        self.carried: set[str] = set()  # external keys some event of this descriptor holds
        self.last_seq = 0

    def matches(self, keys) -> bool:
        return keys == self.required or (self.required <= keys and keys <= self.keys)


class _UidLog:
    """Every uid of a run as a 64-bit digest and the line it came on: 12 bytes a document.

    Duplicates are found once, when the run ends, by sorting the digests.
    """

    __slots__ = ("digests", "lines")

    def __init__(self) -> None:
        self.digests = array("q")
        self.lines = array("i")

    def add(self, uid: Any, line: int) -> None:
        self.digests.append(hash(uid) if type(uid) is str else hash(repr(uid)))
        self.lines.append(line)

    def duplicates(self) -> list[tuple[int, int]]:
        """(line of the repeat, line of the first use), in file order."""
        if len(self.digests) < 2:
            return []
        import numpy

        digests = numpy.frombuffer(self.digests, dtype=numpy.int64)
        lines = numpy.frombuffer(self.lines, dtype=numpy.int32)
        order = numpy.argsort(digests, kind="stable")
        ordered = digests[order]
        repeats = numpy.nonzero(ordered[1:] == ordered[:-1])[0] + 1
        firsts = numpy.searchsorted(ordered, ordered[repeats], side="left")
        return sorted(zip(lines[order[repeats]].tolist(), lines[order[firsts]].tolist(), strict=True))


class _RunState:
    """Cross-document bookkeeping for one run."""

    def __init__(self, uid: str | None, line: int):
        self.report = RunReport(uid=uid, line=line)
        self.uid = uid
        self.started = False
        self.stopped = False
        self.descriptors: dict[str, _Stream] = {}
        self.resources: set[str] = set()
        self.stream_resources: dict[str, str] = {}  # uid -> data_key
        self.sres_keys: set[tuple[str, str]] = set()  # (stream name, data_key) served by stream_datum
        self.datums: set[str] = set()
        self.wanted_datums: dict[str, int] = {}  # datum id -> line of the first event using it
        self.uids = _UidLog()
        self.rejected: set[str] = set()  # uids of documents that failed their schema


class RunValidator:
    """Feed the documents of one file in order; `finish()` returns the per-run reports."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self.splitter = RunSplitter()
        self.runs: dict[str | None, _RunState] = {}
        self.order: list[_RunState] = []
        self._handlers = {name: getattr(self, f"_{name}") for name in _NAMES_OK}

    # -- reporting ----------------------------------------------------------------------------

    def _report(self, state: _RunState, document: Document, reason: str, uid: Any = None) -> None:
        report = state.report
        if len(report.problems) >= MAX_PROBLEMS_PER_RUN:
            report.more_problems += 1
            return
        if uid is None:
            uid = document.doc.get("uid", document.doc.get("datum_id"))
        report.problems.append(
            Problem(self.path, document.line, reason, document.name, uid if isinstance(uid, str) else None)
        )

    def _state(self, run: str | None, document: Document) -> _RunState:
        state = self.runs.get(run)
        if state is None:
            state = self.runs[run] = _RunState(run, document.line)
            self.order.append(state)
        return state

    # -- feeding ------------------------------------------------------------------------------

    def feed(self, document: Document) -> str | None:
        """Check the next document of the file; return the uid of the run it belongs to (None before any start)."""
        name, doc = document.name, document.doc
        run = self.splitter.assign(document)
        state = self.runs.get(run) or self._state(run, document)
        state.report.documents += 1
        reason = check_document(name, doc)
        if reason is None and name in _NAMES_OK:
            reason = limit_problem(name, doc)
            reason = f"cannot be stored: {reason}" if reason else None
        elif reason is not None and name in _NAMES_OK:
            reason = f"fails its schema: {reason}"
        if reason is not None:
            self._report(state, document, reason)
            uid = doc.get("uid")
            if isinstance(uid, str):  # what refers to it is not reported again
                state.rejected.add(uid)
            return run
        if run is None:
            self._report(state, document, f"{name} document before any start document")
            return run
        uid = doc.get("uid") if name != "event_page" else None
        if uid is not None:
            state.uids.add(uid, document.line)
        self._handlers[name](state, document, doc)
        return run

    def has_problems(self, run: str | None) -> bool:
        """Whether validation found something wrong with `run` so far."""
        state = self.runs.get(run)
        return state is not None and bool(state.report.problems or state.report.more_problems)

    def _start(self, state: _RunState, document: Document, doc: dict) -> None:
        if state.started:
            self._report(state, document, "a second start document for this run")
        open_runs = [s.uid for s in self.order if s is not state and s.started and not s.stopped]
        if open_runs:  # interleaved runs: neither can be trusted
            self._report(state, document, f"a second start before the stop of run {open_runs[-1]!r}")
            self._report(
                self.runs[open_runs[-1]],
                document,
                f"still open when run {doc['uid']!r} starts: interleaved runs are refused",
                open_runs[-1],
            )
        state.started = True

    def _stop(self, state: _RunState, document: Document, doc: dict) -> None:
        if state.stopped:
            self._report(state, document, "a second stop document for this run")
        elif doc["run_start"] != state.uid:
            self._report(state, document, f"stop is for another run: run_start {doc['run_start']!r}")
        state.stopped = True

    def _after_stop(self, state: _RunState, document: Document) -> bool:
        if state.stopped:
            self._report(state, document, f"{document.name} document after the run's stop")
        return state.stopped

    def _descriptor(self, state: _RunState, document: Document, doc: dict) -> None:
        if self._after_stop(state, document):
            return
        if doc["run_start"] != state.uid:
            self._report(state, document, f"unknown run start {doc['run_start']!r}")
            return
        if not isinstance(doc.get("name"), str):
            self._report(state, document, "descriptor has no stream 'name'")
            state.rejected.add(doc["uid"])
            return
        state.descriptors[doc["uid"]] = stream = _Stream(doc["name"], doc["data_keys"], document.line)
        state.report.streams.setdefault(stream.name, 0)

    def _event_stream(self, state: _RunState, document: Document, doc: dict) -> _Stream | None:
        """The stream of an event or event page whose keys match it; None (reported) when unusable."""
        stream = state.descriptors.get(doc["descriptor"])
        if stream is None:
            if doc["descriptor"] not in state.rejected:
                self._report(state, document, f"unknown descriptor {doc['descriptor']!r}")
            return None
        if self._after_stop(state, document):
            return None
        data, timestamps = doc["data"], doc["timestamps"]
        if not (stream.matches(data.keys()) and stream.matches(timestamps.keys())):
            self._report(state, document, _key_mismatch(data, timestamps, stream))
        return stream

    def _event(self, state: _RunState, document: Document, doc: dict) -> None:
        stream = self._event_stream(state, document, doc)
        if stream is None:
            return
        data = doc["data"]
        seq = doc["seq_num"]
        if seq <= stream.last_seq:
            self._report(state, document, f"seq_num {seq} does not increase (previous {stream.last_seq})")
        stream.last_seq = seq
        state.report.streams[stream.name] += 1
        if stream.external:
            self._want_datums(state, document, stream, data, doc.get("filled") or {}, False)

    def _event_page(self, state: _RunState, document: Document, doc: dict) -> None:
        stream = self._event_stream(state, document, doc)
        if stream is None:
            return
        data, seq_nums = doc["data"], doc["seq_num"]
        rows = len(seq_nums)
        columns = [doc["time"], doc["uid"], *data.values(), *doc["timestamps"].values()]
        if any(len(column) != rows for column in columns):
            self._report(state, document, "event_page columns differ in length")
        for uid in doc["uid"]:
            state.uids.add(uid, document.line)
        for seq in seq_nums:
            if seq <= stream.last_seq:
                self._report(state, document, f"seq_num {seq} does not increase (previous {stream.last_seq})")
            stream.last_seq = seq
        state.report.streams[stream.name] += rows
        if stream.external:
            self._want_datums(state, document, stream, data, doc.get("filled") or {}, True)

    def _want_datums(self, state, document, stream: _Stream, data, filled, paged: bool) -> None:
        """Remember the datum ids that events reference; they are checked when the run ends."""
        for key in stream.external:
            if key not in data:
                continue
            stream.carried.add(key)
            values = data[key] if paged else [data[key]]
            fills = filled.get(key, False)
            fills = fills if paged and isinstance(fills, list) else [fills] * len(values)
            for value, is_filled in zip(values, fills, strict=False):
                if is_filled is True:
                    continue
                if isinstance(value, str):
                    state.wanted_datums.setdefault(value, document.line)

    def _resource(self, state: _RunState, document: Document, doc: dict) -> None:
        if self._after_stop(state, document):
            return
        run_start = doc.get("run_start")
        if run_start is not None and run_start != state.uid:
            self._report(state, document, f"unknown run start {run_start!r}")
        state.resources.add(doc["uid"])

    def _stream_resource(self, state: _RunState, document: Document, doc: dict) -> None:
        self._resource(state, document, doc)
        state.stream_resources[doc["uid"]] = doc.get("data_key", "")

    def _datum(self, state: _RunState, document: Document, doc: dict) -> None:
        state.datums.add(doc["datum_id"])  # known now, whatever its resource: no second report
        if doc["resource"] not in state.resources and doc["resource"] not in state.rejected:
            self._report(state, document, f"unknown resource {doc['resource']!r}", doc.get("datum_id"))

    def _datum_page(self, state: _RunState, document: Document, doc: dict) -> None:
        state.datums.update(doc["datum_id"])
        if doc["resource"] not in state.resources and doc["resource"] not in state.rejected:
            self._report(state, document, f"unknown resource {doc['resource']!r}", None)

    def _stream_datum(self, state: _RunState, document: Document, doc: dict) -> None:
        key = state.stream_resources.get(doc["stream_resource"])
        if key is None:
            if doc["stream_resource"] in state.rejected:
                return
            self._report(state, document, f"unknown stream_resource {doc['stream_resource']!r}")
            return
        stream = state.descriptors.get(doc["descriptor"])
        if stream is None:
            self._report(state, document, f"unknown descriptor {doc['descriptor']!r}")
            return
        if key and key not in stream.keys:
            self._report(state, document, f"stream_resource data_key {key!r} is not in stream {stream.name!r}")
        state.sres_keys.add((stream.name, key))

    # -- the end ------------------------------------------------------------------------------

    def finish(self) -> list[RunReport]:
        for state in self.order:
            report = state.report
            if state.uid is not None and state.started:
                self._check_external(state)
            at = type(report.line)  # the lines kept are plain ints: a msgpack file counts documents
            for line, first in state.uids.duplicates()[:MAX_PROBLEMS_PER_RUN]:
                used = at(first) if at is DocumentNumber else f"line {first}"
                self._report(state, Document("-", {}, at(line)), f"duplicate uid: already used on {used}", "")
            if report.problems or report.more_problems:
                report.status = Verdict.INVALID
            else:
                report.status = Verdict.OK if state.stopped else Verdict.INCOMPLETE
        return [state.report for state in self.order]

    def _check_external(self, state: _RunState) -> None:
        """Every external value must be served: a datum for legacy keys, a stream_resource for STREAM: keys."""
        missing = [(line, d) for d, line in state.wanted_datums.items() if d not in state.datums]
        for line, datum in sorted(missing)[:5]:
            self._report(
                state, Document("event", {}, line), f"unknown datum {datum!r}: used by an event, not in the run", ""
            )
        carried: dict[str, set[str]] = {}  # stream name -> external keys its events hold
        for stream in state.descriptors.values():
            carried.setdefault(stream.name, set()).update(stream.carried)
        for stream in state.descriptors.values():
            if not state.report.streams.get(stream.name):
                continue
            served = carried[stream.name] | {k for name, k in state.sres_keys if name == stream.name}
            for key in sorted(stream.external - served):
                where = Document("descriptor", {}, stream.line)
                if key in stream.streamed:
                    reason = f"external key {key!r} of stream {stream.name!r} has no stream_resource"
                else:
                    reason = f"external key {key!r} of stream {stream.name!r} is in no event and has no stream_resource"
                self._report(state, where, reason, "")


def _key_mismatch(data: dict, timestamps: dict, stream: _Stream) -> str:
    for label, keys in (("data", data.keys()), ("timestamps", timestamps.keys())):
        extra, missing = sorted(set(keys) - stream.keys), sorted(stream.required - set(keys))
        if extra or missing:
            parts = [f"not in descriptor: {', '.join(extra)}"] if extra else []
            parts += [f"missing: {', '.join(missing)}"] if missing else []
            return f"event {label} keys do not match stream {stream.name!r} ({'; '.join(parts)})"
    return "event keys do not match the descriptor"


def validate_file(path: str | Path, *, strict: bool = False) -> FileReport:
    """Read and validate one run file; never raises for bad content."""
    path = Path(path)
    report = FileReport(path=path)
    stream = read_documents(path, strict=strict)
    validator = RunValidator(path)
    try:
        for document in stream:
            validator.feed(document)
    except IngestError as err:
        report.problems.append(err.problem)
    except RecursionError:
        report.problems.append(Problem(str(path), stream.lines_read or None, "document nested too deeply"))
    report.format = stream.format
    report.truncated = stream.truncated
    report.runs = validator.finish()
    report.conclude()
    return report
