"""The documents that open and close a run: RunStart (with its hints and projections) and RunStop.

Mirrors event-model 1.24's `run_start.json` and `run_stop.json`, including their openness: any extra
metadata key is allowed whose name contains no '.' or '/' (for the start, recursively inside object
values too; for the stop, at the top level only).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from schemas.json_types import (
    ABSENT,
    JsonInteger,
    JsonNumber,
    JsonObject,
    JsonString,
    OpenModel,
    check_key_names,
    one_of_kinds,
)

__all__ = [
    "Calculation",
    "ConfigurationProjection",
    "LinkedEventProjection",
    "CalculatedEventProjection",
    "StaticProjection",
    "Projection",
    "Projections",
    "Hints",
    "RunStart",
    "RunStop",
]


class Calculation(OpenModel):
    """How to compute a calculated projection."""

    callable: JsonString
    args: list[Any] = Field(default_factory=list)
    kwargs: JsonObject = Field(default_factory=dict)


class ConfigurationProjection(OpenModel):
    """A value linked from the configuration of a descriptor."""

    type: Literal["linked"]
    location: Literal["configuration"]
    stream: JsonString
    field: JsonString
    config_device: JsonString
    config_index: JsonInteger


class LinkedEventProjection(OpenModel):
    """A value linked from the Events of a stream."""

    type: Literal["linked"]
    location: Literal["event"]
    stream: JsonString
    field: JsonString


class CalculatedEventProjection(OpenModel):
    """A value calculated from the Events of a stream."""

    type: Literal["calculated"]
    location: Literal["event"]
    stream: JsonString
    field: JsonString
    calculation: Calculation


class StaticProjection(OpenModel):
    """A value given in the projection itself."""

    type: Literal["static"]
    value: Any


def _projection_kind(value: Any) -> str | None:
    # The four forms are told apart by `type` (and, for "linked", `location`): a document can
    # match at most one, so routing on them is the schema's `anyOf` with a precise error.
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if kind == "linked":
        return "configuration" if value.get("location") == "configuration" else "linked"
    if kind in ("calculated", "static"):
        return kind
    return None


Projection = one_of_kinds(
    {
        "configuration": ConfigurationProjection,
        "linked": LinkedEventProjection,
        "calculated": CalculatedEventProjection,
        "static": StaticProjection,
    },
    _projection_kind,
    "a projection whose 'type' is 'linked', 'calculated' or 'static'",
)


class Projections(OpenModel):
    """How to interpret the run as a given projection (for example a NeXus layout)."""

    configuration: JsonObject
    projection: dict[JsonString, Projection]
    version: JsonString
    name: JsonString = ""


def _dimension_item_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return None


DimensionItem = one_of_kinds(
    {"string": JsonString, "list": list[JsonString]},
    _dimension_item_kind,
    "a string or a list of strings",
)


def _sample_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    return None


Sample = one_of_kinds({"string": JsonString, "object": JsonObject}, _sample_kind, "a string or an object")


class Hints(OpenModel):
    """Start-level hints: the independent axes, slow to fast, as [fields, stream] pairs."""

    dimensions: list[list[DimensionItem]] = Field(default_factory=list)


class RunStart(OpenModel):
    """Opens a run; every later document of the run points back to its `uid`."""

    uid: JsonString
    time: JsonNumber
    data_groups: list[JsonString] = Field(default_factory=list)
    data_session: JsonString = ""
    data_type: Any = None
    group: JsonString = ""
    hints: Hints = ABSENT
    owner: JsonString = ""
    project: JsonString = ""
    projections: list[Projections] = Field(default_factory=list)
    sample: Sample = ""
    scan_id: JsonInteger = 0

    @model_validator(mode="before")
    @classmethod
    def _data_type_keys(cls, data: Any) -> Any:
        check_key_names(data, nested=True)
        return data


class RunStop(OpenModel):
    """Closes a run: how it ended, when, and how many Events each stream holds."""

    uid: JsonString
    run_start: JsonString
    time: JsonNumber
    exit_status: Literal["success", "abort", "fail"]
    data_type: Any = None
    num_events: dict[JsonString, JsonInteger] = Field(default_factory=dict)
    reason: JsonString = ""

    @model_validator(mode="before")
    @classmethod
    def _extra_key_names(cls, data: Any) -> Any:
        check_key_names(data, nested=False)
        return data
