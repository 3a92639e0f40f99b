"""msgpack run files (suitcase-msgpack, databroker-pack): a stream of `[name, doc]` msgpack arrays.

suitcase-msgpack packs each document with `use_bin_type=True` and numpy values through
msgpack-numpy's ext hooks; it is read back with `msgpack.Unpacker(raw=False)` and msgpack-numpy's
`decode` as object hook. A decoded numpy value is turned into the plain Python value JSON would have
given (an array into nested lists, a scalar into a number), so that every later stage sees what it
sees of a JSON Lines file. msgpack has no lines: a document's position is its number in the file
(`DocumentNumber`, 1-based). A file that ends inside a document is cut short (still being written);
a document over `max_document_bytes` is refused without being buffered whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import msgpack
import msgpack_numpy

__all__ = ["MSGPACK_PAIR", "is_msgpack", "MsgpackFault", "unpack_documents"]

MSGPACK_PAIR = b"\x92"  # a msgpack array of two elements: how every suitcase-msgpack document starts
_READ_CHUNK = 1 << 20
_decode_numpy = msgpack_numpy.decode


def is_msgpack(head: bytes) -> bool:
    """Whether a file starting with `head` is a msgpack stream of `[name, doc]` pairs. No JSON file
    starts with this byte (it is not valid UTF-8 on its own)."""
    return head[:1] == MSGPACK_PAIR


class MsgpackFault(Exception):
    """Why document `number` cannot be read; `cut_short` when the file simply ends inside it."""

    def __init__(self, number: int, reason: str, *, cut_short: bool = False):
        super().__init__(reason)
        self.number = number
        self.reason = reason
        self.cut_short = cut_short


def _plain(obj: dict) -> Any:
    """msgpack-numpy's object hook, giving Python values instead of numpy ones."""
    value = _decode_numpy(obj)
    if value is obj:
        return obj
    return value.tolist()  # ndarray → nested lists, numpy scalar → int/float/bool/str


def unpack_documents(fh: IO[bytes], max_document_bytes: int) -> Iterator[tuple[int, Any]]:
    """Each msgpack object of `fh` with its number (1-based). Raises `MsgpackFault`."""
    unpacker = msgpack.Unpacker(raw=False, object_hook=_plain, max_buffer_size=max_document_bytes, strict_map_key=False)
    number, fed, read_size = 0, 0, min(_READ_CHUNK, max_document_bytes)
    while chunk := fh.read(read_size):
        try:
            unpacker.feed(chunk)
        except msgpack.BufferFull:
            limit = (
                f"{max_document_bytes >> 20} MiB" if max_document_bytes >= 1 << 20 else f"{max_document_bytes} bytes"
            )
            raise MsgpackFault(number + 1, f"document longer than {limit} (the limit for one document)") from None
        fed += len(chunk)
        for item in _unpacked(unpacker, number):
            number += 1
            yield number, item
    if unpacker.tell() < fed:
        raise MsgpackFault(number + 1, "the last document is not complete msgpack", cut_short=True)


def _unpacked(unpacker: msgpack.Unpacker, number: int) -> Iterator[Any]:
    """What the unpacker holds whole, translating its errors into faults at the right document."""
    while True:
        try:
            yield unpacker.unpack()
        except msgpack.OutOfData:
            return
        except UnicodeDecodeError as err:
            raise MsgpackFault(number + 1, f"malformed msgpack: a string that is not UTF-8 ({err.reason})") from None
        except (ValueError, TypeError, KeyError) as err:
            raise MsgpackFault(number + 1, f"malformed msgpack: {err or type(err).__name__}") from None
        number += 1
