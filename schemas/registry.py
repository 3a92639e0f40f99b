"""Document name -> model, and `check_document`, the one-line verdict on a document.

`check_document` is on the hot path of validating large files (one call per Event), so it calls
each model's compiled pydantic-core validator directly and does no work beyond it when a document is
valid. It never raises: every fault, including junk that is not a document at all, becomes a reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from schemas.descriptor import EventDescriptor
from schemas.event import Event, EventPage
from schemas.json_types import printable
from schemas.legacy import Datum, DatumPage, Resource
from schemas.run import RunStart, RunStop
from schemas.stream import StreamDatum, StreamResourceDocument

__all__ = ["MODELS", "check_document", "describe_validation_error"]

MODELS: dict[str, type[BaseModel]] = {
    "start": RunStart,
    "stop": RunStop,
    "descriptor": EventDescriptor,
    "event": Event,
    "event_page": EventPage,
    "resource": Resource,
    "datum": Datum,
    "datum_page": DatumPage,
    "stream_resource": StreamResourceDocument,
    "stream_datum": StreamDatum,
}

_VALIDATORS: dict[str, Callable[[Any], Any]] = {
    name: model.__pydantic_validator__.validate_python for name, model in MODELS.items()
}
_KNOWN_NAMES = ", ".join(MODELS)


def check_document(name: str, doc: dict) -> str | None:
    """None if `doc` is a valid `name` document, else one line saying which field is wrong and why."""
    validate = _VALIDATORS.get(name) if isinstance(name, str) else None
    if validate is None:
        return f"unknown document name {name!r} (expected one of: {_KNOWN_NAMES})"
    if not isinstance(doc, dict):
        return f"document is {type(doc).__name__}, not a JSON object"
    try:
        validate(doc)
    except ValidationError as exc:
        return describe_validation_error(exc)
    except Exception as exc:  # noqa: BLE001 - the contract is a reason, never an exception
        return f"document could not be checked: {type(exc).__name__}: {exc}"
    return None


def describe_validation_error(exc: ValidationError) -> str:
    """The first error of `exc` as one line naming the field, plus how many more there are."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    first = errors[0]
    path = _field_path(first["loc"])
    message = _plain_message(first["msg"])
    kind = first["type"]
    if kind == "missing":
        reason = f"missing required field '{path}'"
    elif kind == "extra_forbidden":
        reason = f"unexpected field '{path}'"
    elif path:
        reason = f"field '{path}': {message}"
    else:
        reason = message
    if len(errors) > 1:
        reason += f" (and {len(errors) - 1} more)"
    return reason


# pydantic names model classes and Python types in some messages; say it in JSON terms instead.
_PYTHON_WORDS = re.compile(r" or instance of \w+|an instance of (list|dict)")
_JSON_WORDS = {"an instance of list": "a valid list", "an instance of dict": "a valid dictionary"}


def _plain_message(message: str) -> str:
    message = _PYTHON_WORDS.sub(lambda match: _JSON_WORDS.get(match.group(0), ""), message)
    return message[:1].lower() + message[1:]


def _field_path(loc: Sequence[str | int]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith("<") and part.endswith(">"):
            continue  # a branch tag of a one-of type or of StreamResourceDocument, not a key
        elif part == "[key]":
            path += " (key)"  # the key itself, not its value, is wrong
        else:
            path += f".{part}" if path else part
    return printable(path)
