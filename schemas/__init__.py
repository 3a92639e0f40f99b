"""Pydantic models of the Bluesky event-model 1.24 documents, and a fast one-line document check.

The models mirror event-model's JSON schemas: same required fields, types (strict JSON types:
no string for a number, no bool for an integer), enums, patterns and openness to extra keys.
A short, explicit list of legacy forms still found in real files is accepted although event-model
1.24 rejects them (each is documented on its model; `schemas.legacy_forms.LEGACY_FORMS` lists every
legacy form accepted, where it was seen and what the ingester does with it):

- a StreamResource from before event-model 1.20 (no `mimetype`; `spec`, `root`, `resource_path`,
  `resource_kwargs`), see `LegacyStreamResource`;
- a DataKey with `shape: null` (scalar data, older ophyd);
- a Resource with an `id` key (databroker/filestore-era files).

`MODELS` maps each document name to its model; `check_document(name, doc)` returns None for a valid
document or a one-line reason, and never raises.
"""

from schemas.descriptor import (
    Configuration,
    DataKey,
    EventDescriptor,
    Limits,
    LimitsRange,
    PerObjectHint,
    RdsRange,
)
from schemas.event import Event, EventPage
from schemas.legacy import Datum, DatumPage, Resource
from schemas.legacy_forms import LEGACY_BY_NAME, LEGACY_FORMS, LegacyForm
from schemas.registry import MODELS, check_document, describe_validation_error
from schemas.run import (
    CalculatedEventProjection,
    Calculation,
    ConfigurationProjection,
    Hints,
    LinkedEventProjection,
    Projections,
    RunStart,
    RunStop,
    StaticProjection,
)
from schemas.stream import (
    LegacyStreamResource,
    StreamDatum,
    StreamRange,
    StreamResource,
    StreamResourceDocument,
)

__all__ = [
    "MODELS",
    "LEGACY_FORMS",
    "LEGACY_BY_NAME",
    "LegacyForm",
    "check_document",
    "describe_validation_error",
    "RunStart",
    "RunStop",
    "Hints",
    "Projections",
    "Calculation",
    "ConfigurationProjection",
    "LinkedEventProjection",
    "CalculatedEventProjection",
    "StaticProjection",
    "EventDescriptor",
    "DataKey",
    "Configuration",
    "PerObjectHint",
    "Limits",
    "LimitsRange",
    "RdsRange",
    "Event",
    "EventPage",
    "Resource",
    "Datum",
    "DatumPage",
    "StreamResource",
    "LegacyStreamResource",
    "StreamResourceDocument",
    "StreamRange",
    "StreamDatum",
]
