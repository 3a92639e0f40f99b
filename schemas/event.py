"""The data documents of a stream: Event (one reading) and EventPage (a column-wise page of them).

Mirrors event-model 1.24's `event.json` and `event_page.json`: both are closed (no extra keys).
`Event` is on the hot path of validating large files, so its free-form mappings (`data`,
`timestamps`) are checked as JSON objects without being copied.
"""

from __future__ import annotations

from pydantic import Field

from schemas.json_types import (
    BooleanOrString,
    ClosedModel,
    JsonArray,
    JsonInteger,
    JsonNumber,
    JsonObject,
    JsonString,
)

__all__ = ["Event", "EventPage"]


class Event(ClosedModel):
    """One reading of every data key of a stream, with per-key timestamps."""

    uid: JsonString
    descriptor: JsonString
    seq_num: JsonInteger
    time: JsonNumber
    data: JsonObject
    timestamps: JsonObject
    # False while externally stored data is not loaded; a foreign key once it has been moved here.
    filled: dict[JsonString, BooleanOrString] = Field(default_factory=dict)


class EventPage(ClosedModel):
    """A page of Events in columns: every array runs over the same Events."""

    uid: list[JsonString]
    descriptor: JsonString
    seq_num: list[JsonInteger]
    time: list[JsonNumber]
    data: dict[JsonString, JsonArray]
    timestamps: dict[JsonString, JsonArray]
    filled: dict[JsonString, list[BooleanOrString]] = Field(default_factory=dict)
