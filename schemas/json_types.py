"""JSON-Schema value types as strict pydantic types, shared by every document model.

event-model validates documents with JSON Schema (draft 2020-12), whose types are narrower than
pydantic's lax defaults: a string is never a number, a bool is never an integer, an "array" is a list.
The aliases here encode exactly those rules, so the document models read like the JSON schemas they
mirror. `DocumentModel` is the base every document and nested object derives from.

Nothing here knows about a particular document type.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    InstanceOf,
    StringConstraints,
    Tag,
)
from pydantic_core import PydanticCustomError, core_schema

__all__ = [
    "ABSENT",
    "DocumentModel",
    "OpenModel",
    "ClosedModel",
    "JsonInteger",
    "JsonNumber",
    "JsonString",
    "JsonObject",
    "JsonArray",
    "BooleanOrString",
    "matching",
    "one_of_kinds",
    "check_key_names",
]


class DocumentModel(BaseModel):
    """Base of all models: strict JSON types, no coercion; frozen, a validated document is a value."""

    model_config = ConfigDict(strict=True, frozen=True)


class OpenModel(DocumentModel):
    """An object whose schema allows undeclared keys (`additionalProperties: true`)."""

    model_config = ConfigDict(extra="allow")


class ClosedModel(DocumentModel):
    """An object whose schema forbids undeclared keys (`additional-`/`unevaluatedProperties: false`)."""

    model_config = ConfigDict(extra="forbid")


def _require_integral(value: float) -> float:
    # JSON Schema counts 3.0 as an integer (draft 4 onwards); jsonschema agrees.
    if not value.is_integer():
        raise PydanticCustomError("json_integer", "Input should be a valid integer")
    return value


class _IntegerSchema:
    """JSON "integer": an int that is not a bool, or a float with no fractional part."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.union_schema(
            [
                core_schema.int_schema(strict=True),
                core_schema.no_info_after_validator_function(_require_integral, core_schema.float_schema(strict=True)),
            ],
            mode="left_to_right",
            custom_error_type="json_integer",
            custom_error_message="Input should be a valid integer",
        )


class _NumberSchema:
    """JSON "number": any int or float but a bool, including ints too large for a float."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.union_schema(
            [core_schema.float_schema(strict=True), core_schema.int_schema(strict=True)],
            mode="left_to_right",
            custom_error_type="json_number",
            custom_error_message="Input should be a valid number",
        )


class _BooleanOrStringSchema:
    """`anyOf: [boolean, string]`, with one error message instead of one per branch."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.union_schema(
            [core_schema.bool_schema(strict=True), core_schema.str_schema(strict=True)],
            mode="left_to_right",
            custom_error_type="boolean_or_string",
            custom_error_message="Input should be a boolean or a string",
        )


# The default of an optional object field that may not be null. pydantic does not validate
# defaults, so an absent field reads as None while an explicit null is still refused; a model
# instance as the default would instead be deep-copied on every validation.
ABSENT: Any = None

JsonInteger = Annotated[int, _IntegerSchema]
JsonNumber = Annotated[float, _NumberSchema]
JsonString = str
# "type: object" with any content: an isinstance check, no copy of the (possibly large) mapping.
JsonObject = InstanceOf[dict]
JsonArray = InstanceOf[list]
BooleanOrString = Annotated[bool | str, _BooleanOrStringSchema]


def matching(pattern: str) -> Any:
    """A string constraint with JSON-Schema `pattern` semantics: Python `re.search`, unanchored.

    pydantic's own `pattern=` (Rust regex, checked inside pydantic-core, so fast) also searches
    unanchored, and agrees with `re.search` on the schemas' patterns except for `$`, which in
    Python also matches before a final newline; a pattern with `$` is checked with `re` instead.
    """
    if "$" not in pattern:
        return StringConstraints(pattern=pattern)
    search = re.compile(pattern).search

    def check(value: str) -> str:
        if search(value) is None:
            raise PydanticCustomError(
                "string_pattern_mismatch",
                "String should match pattern '{pattern}'",
                {"pattern": pattern},
            )
        return value

    return AfterValidator(check)


def one_of_kinds(kinds: dict[str, type], choose: Callable[[Any], str | None], expected: str) -> Any:
    """An `anyOf` of mutually exclusive branches, routed by `choose(value)` to one branch.

    Routing gives the error of the branch that applies rather than one error per branch; `choose`
    returns None when no branch can apply and the value is reported as "Input should be {expected}".
    pydantic puts the branch tag in an error's location; tags are written `<tag>` so that
    `schemas.registry` can drop them when it names the field.
    """
    tagged = {f"<{tag}>": kind for tag, kind in kinds.items()}
    branches = tuple(Annotated[kind, Tag(tag)] for tag, kind in tagged.items())

    def route(value: Any) -> str | None:
        tag = choose(value)
        return None if tag is None else f"<{tag}>"

    return Annotated[
        Union[branches],  # noqa: UP007 - built from a tuple at run time
        Discriminator(
            route,
            custom_error_type="no_matching_kind",
            custom_error_message=f"Input should be {expected}",
        ),
    ]


# Keys of objects under the run start, descriptor and their extra keys: event-model's `DataType`,
# `patternProperties: {"^([^./]+)$": DataType}, additionalProperties: false`. With `re.search`
# that pattern holds exactly for a non-empty string without '.' or '/' (`[^./]` matches a newline
# too), which is tested here with plain string operations: the walk visits every key of a descriptor.
_KEY_RULE = "keys must be non-empty and contain neither '.' nor '/'"


def printable(text: str) -> str:
    """`text` with control characters escaped as in repr(), so that a reason naming it stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _good_key(key: Any) -> bool:
    return isinstance(key, str) and key != "" and "." not in key and "/" not in key


def _first_bad_key(mapping: dict) -> list[Any] | None:
    """The path to the first key breaking the rule, through objects only, or None."""
    for key, value in mapping.items():
        # `_good_key` inlined: this loop visits every key of a descriptor.
        if not (isinstance(key, str) and key and "." not in key and "/" not in key):
            return [key]
        if isinstance(value, dict):
            bad = _first_bad_key(value)
            if bad is not None:
                return [key, *bad]
    return None


def check_key_names(doc: Any, *, nested: bool) -> None:
    """Apply event-model's `DataType` key rule to a top-level document.

    At the top level a key that breaks the rule is an unexpected field (every declared field obeys
    it). With `nested`, the rule also applies inside every object value, at any depth reached
    through objects (not arrays), declared fields included, as the run start and descriptor
    schemas say; the run stop's `DataType` is unconstrained, so there it stops at the top level.
    A cyclic mapping (impossible in JSON) ends in RecursionError, as it does in jsonschema.
    """
    if not isinstance(doc, dict):
        return
    for key in doc:
        if not _good_key(key):
            raise PydanticCustomError(
                "bad_key", "unexpected field {key} ({rule})", {"key": repr(key), "rule": _KEY_RULE}
            )
    if not nested:
        return
    bad = _first_bad_key(doc)
    if bad is not None:
        raise PydanticCustomError(
            "bad_key",
            "key {key} in field '{where}' is not allowed ({rule})",
            {"key": repr(bad[-1]), "where": printable(".".join(bad[:-1])), "rule": _KEY_RULE},
        )
