"""The EventDescriptor document and what it is made of: DataKey, Limits, Configuration, hints.

Mirrors event-model 1.24's `event_descriptor.json`. One legacy DataKey form that bluesky-tiled-plugins'
RunNormalizer repairs is accepted although event-model rejects it: `shape: null` (scalar data from
older ophyd). The older `dtype_str` / `dtype_descr` keys need no exception: DataKey is open to extra
keys. `external: null` stays invalid: RunNormalizer turns it into "", which event-model rejects too.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from schemas.json_types import (
    ABSENT,
    ClosedModel,
    JsonInteger,
    JsonNumber,
    JsonObject,
    JsonString,
    OpenModel,
    check_key_names,
    matching,
    one_of_kinds,
)

__all__ = [
    "Dtype",
    "NumpyDtype",
    "LimitsRange",
    "RdsRange",
    "Limits",
    "DataKey",
    "Configuration",
    "PerObjectHint",
    "EventDescriptor",
]

Dtype = Literal["string", "number", "array", "boolean", "integer"]

# A numpy dtype string such as `<f8` or `|u1`; unanchored, as in the schema.
_NUMPY_DTYPE_PATTERN = r"[|<>][tbiufcmMOSUV][0-9]+"
NumpyDtypeString = Annotated[JsonString, matching(_NUMPY_DTYPE_PATTERN)]
_search_numpy_dtype = re.compile(_NUMPY_DTYPE_PATTERN).search


def _check_field_dtype(pair: list[str]) -> list[str]:
    if _search_numpy_dtype(pair[1]) is None:
        raise PydanticCustomError(
            "string_pattern_mismatch",
            "String should match pattern '{pattern}'",
            {"pattern": _NUMPY_DTYPE_PATTERN},
        )
    return pair


# One field of a structured dtype: exactly [name, numpy dtype string].
StructuredField = Annotated[list[JsonString], Field(min_length=2, max_length=2), AfterValidator(_check_field_dtype)]


def _numpy_dtype_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "structured"
    return None


NumpyDtype = one_of_kinds(
    {"string": NumpyDtypeString, "structured": list[StructuredField]},
    _numpy_dtype_kind,
    "a numpy dtype string or a list of [name, dtype] pairs",
)


class LimitsRange(ClosedModel):
    """A low/high pair; either end may be null, neither may be absent."""

    low: JsonNumber | None
    high: JsonNumber | None


class RdsRange(OpenModel):
    """Read-different-than-set parameters (Tango)."""

    time_difference: JsonNumber
    value_difference: JsonNumber


class Limits(ClosedModel):
    """EPICS/Tango limits of a signal."""

    alarm: LimitsRange | None = None
    control: LimitsRange | None = None
    display: LimitsRange | None = None
    warning: LimitsRange | None = None
    hysteresis: JsonNumber | None = None
    rds: RdsRange | None = None


class DataKey(OpenModel):
    """Describes one entry of the `data` of the Events in a stream.

    Legacy (accepted, rejected by event-model 1.24): `shape` may be null, meaning scalar data;
    RunNormalizer turns it into an empty shape.
    """

    dtype: Dtype
    shape: list[JsonInteger | None] | None
    source: JsonString
    choices: list[JsonString] = Field(default_factory=list)
    dims: list[JsonString] = Field(default_factory=list)
    dtype_numpy: NumpyDtype = ""
    external: Annotated[JsonString, matching(r"^[A-Z]+:?")] = ""
    limits: Limits = ABSENT
    object_name: JsonString = ""
    precision: JsonInteger | None = None
    units: JsonString | None = None


class Configuration(OpenModel):
    """Readings of one device's configuration signals, with their DataKeys."""

    data: JsonObject = Field(default_factory=dict)
    data_keys: dict[JsonString, DataKey] = Field(default_factory=dict)
    timestamps: JsonObject = Field(default_factory=dict)


class PerObjectHint(OpenModel):
    """The descriptor's `hints`: the 'interesting' keys, plus per-device entries as extra keys."""

    NX_class: Annotated[JsonString, matching(r"^NX[A-Za-z_]+$")] = ""
    fields: list[JsonString] = Field(default_factory=list)


class EventDescriptor(OpenModel):
    """Describes the data of one stream of Events.

    Extra top-level keys are allowed when their names (and, recursively, the keys of any object
    value) contain no '.' or '/', the schema's `DataType` rule, which also binds declared fields.
    """

    uid: JsonString
    run_start: JsonString
    time: JsonNumber
    data_keys: dict[JsonString, DataKey]
    configuration: dict[JsonString, Configuration] = Field(default_factory=dict)
    hints: PerObjectHint = ABSENT
    name: JsonString = ""
    object_classes: dict[JsonString, JsonString] = Field(default_factory=dict)
    object_keys: JsonObject = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _data_type_keys(cls, data: Any) -> Any:
        check_key_names(data, nested=True)
        return data
