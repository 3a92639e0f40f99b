"""The legacy forms accepted although event-model 1.24 (or Tiled) does not take them as they are.

Each is a form that real run files hold (where it was seen), that databroker v1 read and that
bluesky-tiled-plugins' RunNormalizer (TiledWriter's first stage) takes, and what the ingester does
with it: `dropped` (the field is left out, as RunNormalizer leaves it out), `translated` (turned into
the event-model 1.24 form, as RunNormalizer turns it) or `kept` (stored as it is). The ingester
records, under the run's `_ingest.legacy`, one line per form a run used: the form's `name`, what was
done and the first line of the file where it was found. The README's "Formats accepted" lists them.

Nothing here validates a document; the models that accept these forms say so in their docstrings.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LegacyForm", "LEGACY_FORMS", "LEGACY_BY_NAME"]


@dataclass(frozen=True)
class LegacyForm:
    name: str  # the word used in `_ingest.legacy`
    form: str  # what the documents hold
    seen: str  # where it was seen
    action: str  # "dropped", "translated" or "kept"
    done: str  # what is done with it, in a few words


LEGACY_FORMS = (
    LegacyForm(
        "resource-id",
        "a Resource with an `id` key (a copy of its uid)",
        "databroker/filestore-era files, 2019 (event-model's resource schema was closed later)",
        "dropped",
        "the `id` key is left out; the Resource is read by its `uid`",
    ),
    LegacyForm(
        "resource-without-run-start",
        "a Resource without `run_start`",
        "files written before event-model 1.13",
        "kept",
        "it belongs to the run it is found in",
    ),
    LegacyForm(
        "stream-resource-pre-1.20",
        "a StreamResource with `spec`, `root`, `resource_path`, `resource_kwargs` and no `mimetype`",
        "ophyd-async files before event-model 1.20 (2024)",
        "translated",
        "into a StreamResource with `mimetype`, `uri` and `parameters`, as RunNormalizer does",
    ),
    LegacyForm(
        "shape-null",
        "a data key with `shape: null`",
        "older ophyd (scalar signals)",
        "translated",
        "into an empty shape",
    ),
    LegacyForm(
        "dtype-str",
        "a data key with `dtype_str` or `dtype_descr` instead of `dtype_numpy`",
        "ophyd before 1.7 (2022)",
        "translated",
        "into `dtype_numpy`",
    ),
    LegacyForm(
        "stream-key-with-datums",
        'a data key marked `external: "STREAM:"` whose events hold Datum ids (served by Resource/Datum)',
        "bluesky-tiled-plugins' own example documents; area detectors with a STREAM: label",
        "translated",
        "its Datums become StreamDatums of a StreamResource made from the Resource, as RunNormalizer does",
    ),
    LegacyForm(
        "filestore-without-colon",
        '`external: "FILESTORE"` (no colon), on a key served by Datums or by StreamDatums',
        "ophyd.sim and older ophyd area detectors",
        "kept",
        "read as any external key: by its Datums, or by its StreamResource when events do not hold it",
    ),
    LegacyForm(
        "filled-datum-ids",
        "an event whose `filled` holds Datum ids instead of booleans (the data was loaded into `data`)",
        "files exported by databroker with filling on",
        "kept",
        "the key counts as filled: its values are stored like internal data, as TiledWriter stores them",
    ),
    LegacyForm(
        "configuration-datum-id",
        "a configuration value holding a Datum id (possibly of a Datum that comes later)",
        "ophyd.sim and area-detector configuration readings",
        "kept",
        "stored as the string it is; configuration values are not references",
    ),
    LegacyForm(
        "zero-shape",
        "a StreamResource `chunk_shape` or a data key `shape` with zeros",
        "ophyd-async detectors described before they were armed (Diamond, 2024-2025)",
        "translated",
        "zeros mean unknown: the shape and chunking registered are the file's",
    ),
)

LEGACY_BY_NAME = {form.name: form for form in LEGACY_FORMS}
