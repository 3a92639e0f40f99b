"""The pre-stream documents for externally stored data: Resource, Datum and DatumPage.

Mirrors event-model 1.24's `resource.json`, `datum.json` and `datum_page.json`; all three are closed.
They are "legacy" in that newer runs use StreamResource/StreamDatum (see `schemas.stream`), but
event-model 1.24 still defines them, and they are validated exactly as it does: a Resource needs
`root` and `resource_path`, and `run_start` is optional. One legacy form is accepted although
event-model 1.24 rejects it: a Resource with an `id` key (databroker/filestore-era files), see
`schemas.legacy_forms` ("resource-id"); RunNormalizer leaves it out, and so does the ingester.
"""

from __future__ import annotations

from typing import Literal

from schemas.json_types import ClosedModel, JsonArray, JsonObject, JsonString

__all__ = ["Resource", "Datum", "DatumPage"]


class Resource(ClosedModel):
    """A file (or group of files) of external data, read by the handler named by `spec`."""

    uid: JsonString
    spec: JsonString
    root: JsonString
    resource_path: JsonString
    resource_kwargs: JsonObject
    path_semantics: Literal["posix", "windows"] = "posix"
    run_start: JsonString = ""
    id: JsonString = ""  # legacy: a copy of the uid, left out when the Resource is read


class Datum(ClosedModel):
    """One quantum of data inside a Resource, referenced from an Event's `data` by `datum_id`."""

    datum_id: JsonString
    resource: JsonString
    datum_kwargs: JsonObject


class DatumPage(ClosedModel):
    """A page of Datums of one Resource in columns."""

    datum_id: list[JsonString]
    resource: JsonString
    datum_kwargs: dict[JsonString, JsonArray]
