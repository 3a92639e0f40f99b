"""Read stage: stream `Document(name, doc, line)` out of a run file, whatever its format.

Formats are told apart by content, never by file name:

- suitcase-jsonl: one `[name, doc]` array a line;
- JSONL backups (TiledWriter, bluesky): one `{"name": ..., "doc": ...}` object a line;
- a JSON array of either (bluesky's JSONWriter writes one element a line; a pretty-printed
  array is read whole, as it cannot be streamed line by line);
- suitcase-msgpack (databroker-pack's `.msgpack`): msgpack `[name, doc]` arrays, one after the
  other, told by their first byte (`ingester.read.msgpackio`); a position there is a document
  number (`DocumentNumber`), not a line;
- any of these gzip-compressed (detected from the magic bytes).

Line-oriented files are read one line at a time (memory does not grow with the file). `NaN`,
`Infinity` and `-Infinity` are accepted the way Python's json module writes them. A last line that
is cut short (no newline, does not parse) means the file is still being written: the stream ends and
`truncated` says where, unless `strict` asks for it to be an error. This stage never validates
documents against their schemas, and never modifies the file.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from ingester.problems import IngestError, Problem
from ingester.read.jsonio import is_gzip, loads_lenient
from ingester.read.msgpackio import MsgpackFault, is_msgpack, unpack_documents
from ingester.read.source import NotRegularFile, Source, open_source
from ingester.runs import Document, DocumentNumber

__all__ = ["DocumentStream", "read_documents", "MAX_LINE_BYTES"]

MAX_LINE_BYTES = 64 << 20  # one document a line: a longer line is refused rather than read whole
_READ_CHUNK = 1 << 20
_BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark some editors put first

_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError


def read_documents(path: str | Path, *, strict: bool = False) -> DocumentStream:
    """Return an iterable of the documents in `path` (see `DocumentStream`)."""
    return DocumentStream(Path(path), strict=strict)


class DocumentStream:
    """Iterate once over the documents of one run file.

    After iteration, `format` names the format found, `compressed` says whether it was gzip, and
    `truncated` holds a `Problem` when the file ended in a half-written document (non-strict mode).
    Faults raise `IngestError` carrying the file, the line and the reason.
    """

    def __init__(self, path: Path, *, strict: bool = False):
        self.path = path
        self.strict = strict
        self.format: str | None = None
        self.compressed = False
        self.truncated: Problem | None = None
        self.lines_read = 0
        self.source: Source | None = None  # what was read, when read to the end

    # -- errors -------------------------------------------------------------------------------

    def _problem(self, line: int | None, reason: str) -> Problem:
        return Problem(path=str(self.path), line=line, reason=reason)

    def _fail(self, line: int | None, reason: str) -> IngestError:
        return IngestError(self._problem(line, reason))

    def _cut_short(self, line: int, reason: str) -> None:
        """The file ends mid-document: an error when strict, otherwise the run is incomplete."""
        if self.strict:
            raise self._fail(line, f"truncated: {reason}")
        self.truncated = self._problem(line, f"truncated: {reason} (file still being written?)")

    def _next_position(self) -> int:
        """Where the document after the last one read starts: a line, or a document number."""
        following = self.lines_read + 1
        return DocumentNumber(following) if self.format == "msgpack" else following

    # -- iteration ------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Document]:
        try:
            raw, fh = open_source(self.path)
        except NotRegularFile as err:
            raise self._fail(None, f"not a regular file ({err}): not read") from None
        except OSError as err:
            raise self._fail(None, f"cannot open: {err.strerror or err}") from None
        with raw, fh:
            self.compressed = is_gzip(fh.peek(2)[:2])
            stream = gzip.GzipFile(fileobj=fh, mode="rb") if self.compressed else fh
            try:
                if is_msgpack(stream.peek(1)[:1]):
                    yield from self._read_msgpack(stream)
                else:
                    yield from self._read(stream, bounded=self.compressed or raw.opened.st_size > MAX_LINE_BYTES)
                while stream.read(_READ_CHUNK):  # what follows the last document: hashed too
                    pass
            except EOFError:
                self._cut_short(self._next_position(), "compressed stream ends early")
            except (gzip.BadGzipFile, zlib.error) as err:
                raise self._fail(self._next_position(), f"corrupt gzip data: {err}") from None
            except OSError as err:
                raise self._fail(self._next_position(), f"read error: {err}") from None
            self.source = raw.source()

    def _read_msgpack(self, fh: IO[bytes]) -> Iterator[Document]:
        self.format = "msgpack"
        try:
            for number, item in unpack_documents(fh, MAX_LINE_BYTES):
                self.lines_read = position = DocumentNumber(number)
                yield self._document(item, position)
        except MsgpackFault as fault:
            if not fault.cut_short:
                raise self._fail(DocumentNumber(fault.number), fault.reason) from None
            self._cut_short(DocumentNumber(fault.number), fault.reason)

    def _numbered(self, fh: IO[bytes], bounded: bool) -> Iterator[tuple[int, bytes]]:
        """The file's lines with their numbers. `bounded` (a file that may hold a line over the limit):
        no line is read whole past `MAX_LINE_BYTES`, so that memory stays bounded."""
        if not bounded:
            return enumerate(fh, start=1)
        return self._bounded_lines(fh)

    def _bounded_lines(self, fh: IO[bytes]) -> Iterator[tuple[int, bytes]]:
        readline = fh.readline
        for number, raw in enumerate(iter(lambda: readline(MAX_LINE_BYTES + 1), b""), start=1):
            if len(raw) > MAX_LINE_BYTES:
                raise self._fail(number, f"line longer than {MAX_LINE_BYTES >> 20} MiB (the limit for one document)")
            yield number, raw

    def _read(self, fh: IO[bytes], bounded: bool = False) -> Iterator[Document]:
        lines = self._numbered(fh, bounded)
        for number, raw in lines:
            self.lines_read = number
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            stripped = raw.strip()
            if not stripped:
                continue
            if stripped[:1] == b"{":
                self.format = "name-doc-jsonl"
                yield self._document(self._parse(raw, number), number)
                yield from self._read_lines(lines)
            elif stripped[:1] == b"[":
                yield from self._read_bracketed(fh, lines, raw, number)
            else:
                self._check_utf8(raw, number)
                raise self._fail(number, "not a run file: expected a JSON array or object per line")
            return
        raise self._fail(1, "empty file: no documents")

    def _read_bracketed(self, fh, lines, raw: bytes, number: int) -> Iterator[Document]:
        """A first line starting with `[`: a suitcase `[name, doc]` line, or a JSON array."""
        first = loads_lenient(raw)
        if first is None and b"\x00" in raw:
            raise self._fail(number, _malformed(raw, ValueError()))
        if isinstance(first, list) and len(first) == 2 and isinstance(first[0], str):
            self.format = "suitcase-jsonl"
            yield self._document(first, number)
            yield from self._read_lines(lines)
            return
        self.format = "json-array"
        if isinstance(first, list):  # the whole array on one line
            for item in first:
                yield self._document(item, number)
            return
        body = raw.strip()[1:].strip()
        if body and not body.endswith(b",") and raw.endswith(b"\n"):  # a whole line that is no JSON value
            self._parse(raw, number, complete=True)  # raises, saying why
        if body.endswith(b","):
            body = body[:-1]
        if body:  # `[{...},` : one element a line, starting on the first line
            yield from self._read_array_lines(lines, number, body, complete=raw.endswith(b"\n"))
            return
        for number, raw in lines:  # the first element decides: one a line, or pretty-printed
            self.lines_read = number
            element = raw.strip()
            if not element:
                continue
            if element == b"]":
                return
            probe = element[:-1] if element.endswith(b",") else element
            if loads_lenient(probe) is None:
                yield from self._read_array_whole(fh, raw, number)
                return
            yield from self._read_array_lines(lines, number, probe, complete=True)
            return
        self._cut_short(number + 1, "JSON array is not closed")

    # -- line-oriented formats -------------------------------------------------------------------

    def _read_lines(self, lines) -> Iterator[Document]:
        loads, JSONDecodeError, document = _loads, _JSONDecodeError, self._document
        for number, raw in lines:
            self.lines_read = number
            try:
                item = loads(raw)
            except JSONDecodeError:
                if not raw.strip():
                    continue
                item = self._parse(raw, number)
                if item is None:
                    return
            yield document(item, number)

    def _read_array_lines(self, lines, number: int, first: bytes, *, complete: bool) -> Iterator[Document]:
        """bluesky's JSONWriter: `[`, then one element a line followed by `,`, then `]`."""
        item = self._parse(first, number, complete=complete)
        if item is None:
            return
        yield self._document(item, number)
        for number, raw in lines:
            self.lines_read = number
            element = raw.strip()
            if not element:
                continue
            closing = element.endswith(b"]") and not element.startswith((b"[", b"{"))
            if closing:
                element = element[:-1].strip()
                if not element:
                    return
            if element.endswith(b","):
                element = element[:-1]
            item = self._parse(element, number, complete=raw.endswith(b"\n") or closing)
            if item is None:
                return
            yield self._document(item, number)
            if closing:
                return
        self._cut_short(self.lines_read + 1, "JSON array is not closed")

    def _parse(self, raw: bytes, number: int, complete: bool | None = None) -> Any:
        """Parse one line; `None` when it is the half-written end of a file still being written."""
        try:
            return _loads(raw)
        except _JSONDecodeError as err:
            orjson_error = err
        self._check_utf8(raw, number)
        try:  # NaN / Infinity / -Infinity, as Python's json writes them
            return json.loads(raw)
        except (ValueError, RecursionError):
            pass
        if complete is None:
            complete = raw.endswith(b"\n")
        if not complete:
            self._cut_short(number, "the last line is not a complete JSON value")
            return None
        raise self._fail(number, _malformed(raw, orjson_error))

    def _check_utf8(self, raw: bytes, number: int) -> None:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as err:
            bad = raw[err.start : err.start + 1].hex()
            raise self._fail(number, f"not UTF-8: byte 0x{bad} at column {err.start + 1}") from None

    # -- a pretty-printed JSON array -------------------------------------------------------------

    def _read_array_whole(self, fh, first_element_line: bytes, number: int) -> Iterator[Document]:
        """Read the rest of a multi-line array at once; elements keep the line they start on."""
        data = first_element_line + fh.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = number + data.count(b"\n", 0, err.start)
            raise self._fail(line, "not UTF-8: invalid byte sequence") from None
        decoder = json.JSONDecoder()
        pos, line, end = 0, number, len(text)
        while True:
            pos, line = _skip_whitespace(text, pos, line)
            if pos >= end:
                self._cut_short(line, "JSON array is not closed")
                return
            if text[pos] == "]":
                return
            try:
                item, stop = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as err:
                if err.pos >= end - 1 or text.find("]", err.pos) < 0:
                    self._cut_short(line, "the last element is not complete")
                    return
                raise self._fail(line + text.count("\n", pos, err.pos), f"malformed JSON: {err.msg}") from None
            self.lines_read = line
            yield self._document(item, line)
            pos, line = _skip_whitespace(text, stop, line + text.count("\n", pos, stop))
            if pos < end and text[pos] == ",":
                pos += 1
            elif pos < end and text[pos] != "]":
                raise self._fail(line, "malformed JSON array: expected ',' or ']'")

    # -- one element ------------------------------------------------------------------------------

    def _document(self, item: Any, number: int) -> Document:
        if type(item) is list and len(item) == 2:
            name, doc = item
        elif type(item) is dict and "name" in item and "doc" in item:
            name, doc = item["name"], item["doc"]
        else:
            raise self._fail(number, 'expected a [name, doc] pair or a {"name": ..., "doc": ...} object')
        if type(name) is not str or type(doc) is not dict:
            raise self._fail(number, "expected a document name (string) and a document (object)")
        return Document(name, doc, number)


def _skip_whitespace(text: str, pos: int, line: int) -> tuple[int, int]:
    """The position of the next non-blank character from `pos`, and its line."""
    end = len(text)
    while pos < end and text[pos] in " \t\r\n":
        if text[pos] == "\n":
            line += 1
        pos += 1
    return pos, line


def _malformed(raw: bytes, error: Exception) -> str:
    """Why a complete line is not a JSON value, saying what is wrong where it is recognisable."""
    nul = raw.find(b"\x00")
    if nul >= 0:
        return f"malformed JSON: a NUL byte at column {nul + 1} (binary data in a run file?)"
    if "recursion" in str(error).lower() or "depth limit" in str(error).lower():
        return "malformed JSON: nested more than 1024 levels deep"
    return f"malformed JSON: {error}"
