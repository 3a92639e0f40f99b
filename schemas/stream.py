"""The stream documents for externally stored data: StreamResource and StreamDatum.

Mirrors event-model 1.24's `stream_resource.json` and `stream_datum.json`; both are open to extra keys.
A StreamResource written before event-model 1.20 (no `mimetype`; `spec`, `root`, `resource_path`,
`resource_kwargs` instead of `uri` and `parameters`) is still found in real files and is accepted as
`LegacyStreamResource`, the form bluesky-tiled-plugins' RunNormalizer converts from.
`StreamResourceDocument` is either form, told apart as RunNormalizer does: by `mimetype`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Discriminator, RootModel, Tag

from schemas.json_types import JsonInteger, JsonObject, JsonString, OpenModel

__all__ = [
    "StreamRange",
    "StreamResource",
    "LegacyStreamResource",
    "StreamResourceDocument",
    "StreamDatum",
]


class StreamResource(OpenModel):
    """A file (or group of files) of external data streams, read by the handler for `mimetype`."""

    uid: JsonString
    data_key: JsonString
    mimetype: JsonString
    uri: JsonString
    parameters: JsonObject
    run_start: JsonString = ""


class LegacyStreamResource(OpenModel):
    """A StreamResource as written by event-model < 1.20 (not valid in 1.24, still ingested)."""

    uid: JsonString
    spec: JsonString
    root: JsonString
    resource_path: JsonString
    resource_kwargs: JsonObject
    data_key: JsonString = ""
    run_start: JsonString = ""


def _stream_resource_form(value: Any) -> str:
    # RunNormalizer's rule: without `mimetype` a document is the old form.
    return "<current>" if isinstance(value, dict) and "mimetype" in value else "<legacy>"


class StreamResourceDocument(
    RootModel[
        Annotated[
            Annotated[StreamResource, Tag("<current>")] | Annotated[LegacyStreamResource, Tag("<legacy>")],
            Discriminator(_stream_resource_form),
        ]
    ]
):
    """A `stream_resource` document in either form; `.root` is the validated model."""

    model_config = {"strict": True, "frozen": True}


class StreamRange(OpenModel):
    """A half-open range of integers, `start` included, `stop` excluded."""

    start: JsonInteger
    stop: JsonInteger


class StreamDatum(OpenModel):
    """A slice of a StreamResource's data, and the Events of a stream that it fills."""

    uid: JsonString
    stream_resource: JsonString
    descriptor: JsonString
    indices: StreamRange
    seq_nums: StreamRange
