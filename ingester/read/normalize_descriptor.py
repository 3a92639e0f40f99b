"""Bring event descriptors to the current event-model form, the way TiledWriter's normalizer does.

`DescriptorNormalizer` has the semantics of bluesky-tiled-plugins' `RunNormalizer.descriptor`
(tests/read/test_normalize_descriptor.py feeds both the same descriptors and compares), without
importing bluesky-tiled-plugins, whose package import alone costs about 250 MB and a second:

- the reserved data keys `time` and `seq_num` become `time_` and `seq_num_` (moved to the end of
  `data_keys` and of their `object_keys` list), with a note each; a clash with an existing
  `time_`/`seq_num_` is an error;
- in every data key (of the event data and of each configuration), `dtype_numpy` is taken from
  `dtype_descr`, else an existing `dtype_numpy`, else the legacy `dtype_str`, else the JSON `dtype`;
  `dtype_descr` and `dtype_str` are dropped; a `shape` of None becomes ();
- each data key listed in `object_keys` gets its `object_name`;
- a key that is external in any descriptor of the run so far has its `external` set to "" when it
  is missing or None (the normalizer's state spans the run, as RunNormalizer's does);
- the result is checked against event-model's descriptor schema (through our own models first).

The document given is never modified: a normalized deep copy is returned.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from schemas import check_document

__all__ = ["DescriptorNormalizer", "DataKeySets", "RESERVED_DATA_KEYS", "JSON_DTYPE_TO_NUMPY"]

# Data keys that would collide with the table's own columns; each is renamed with a trailing "_".
RESERVED_DATA_KEYS = ("time", "seq_num")

# The numpy type string for each broad JSON `dtype` of a data key (strings have no fixed width).
JSON_DTYPE_TO_NUMPY = {
    "number": "<f8",
    "array": "<f8",
    "integer": "<i8",
    "boolean": "|b1",
    "string": "<U0",
}


class DescriptorNormalizer:
    """Normalizes the descriptors of one run, in file order; `notes` says what was renamed."""

    def __init__(self) -> None:
        self.external_keys: set[str] = set()  # data keys external in some descriptor so far
        self.notes: list[str] = []

    def __call__(self, descriptor: dict[str, Any]) -> dict[str, Any]:
        doc = copy.deepcopy(descriptor)
        data_keys = doc["data_keys"]
        for name in RESERVED_DATA_KEYS:
            if name in data_keys:
                _rename(doc, name)
                self.notes.append(f"Renamed data_key '{name}' to '{name}_' in stream {doc['name']}")

        # Unpacked before any change, so a configuration without data keys fails before the rest.
        specs_of_configurations = [entry["data_keys"].values() for entry in doc.get("configuration", {}).values()]
        for spec in itertools.chain(data_keys.values(), *specs_of_configurations):
            _set_numpy_dtype(spec)
            if "shape" in spec and spec.get("shape") is None:
                spec["shape"] = ()

        for object_name, keys in doc.get("object_keys", {}).items():
            for key in keys:
                data_keys[key]["object_name"] = object_name

        self.external_keys.update(key for key, spec in data_keys.items() if "external" in spec)
        for key in self.external_keys:
            if key in data_keys and data_keys[key].get("external") is None:
                data_keys[key]["external"] = ""

        _check_schema(doc)
        return doc


def _rename(doc: dict[str, Any], name: str) -> None:
    data_keys, renamed = doc["data_keys"], f"{name}_"
    if renamed in data_keys:
        raise ValueError(f"Cannot rename {name} to {renamed} because it already exists")
    data_keys[renamed] = data_keys.pop(name)
    for keys in doc.get("object_keys", {}).values():
        if name in keys:
            keys.remove(name)
            keys.append(renamed)


def _set_numpy_dtype(spec: dict[str, Any]) -> None:
    """`dtype_numpy` by precedence: structured `dtype_descr`, `dtype_numpy`, `dtype_str`, JSON `dtype`."""
    structured = spec.pop("dtype_descr", [])
    legacy = spec.pop("dtype_str", None)
    dtype = (
        [list(field) for field in structured]
        or spec.get("dtype_numpy", legacy)
        or JSON_DTYPE_TO_NUMPY.get(spec["dtype"])
    )
    if dtype:
        spec["dtype_numpy"] = dtype


def _check_schema(doc: dict[str, Any]) -> None:
    """event-model's schema check of the result, as RunNormalizer makes it. Our models of the schemas
    (`schemas/`, held to event-model's by their tests) answer first: jsonschema takes about a
    millisecond a data key, 20 s for a descriptor of 20,000 keys. Only a descriptor they find wrong
    goes to jsonschema, for the very error RunNormalizer raises."""
    if check_document("descriptor", doc) is None:
        return
    from event_model import DocumentNames, schema_validators

    schema_validators[DocumentNames.descriptor].validate(doc)


class DataKeySets:
    """The run-wide internal and external data key names (after renaming), as RunNormalizer keeps them.

    `external_only` holds the names that are external in some descriptor and internal in none, plus
    the raw reserved names that would be renamed into one of them: an event carrying any of these
    may reference a Datum.
    """

    def __init__(self) -> None:
        self.internal: set[str] = set()
        self.external: set[str] = set()
        self.external_only: set[str] = set()

    def add_descriptor(self, descriptor: dict[str, Any]) -> None:
        for key, spec in descriptor.get("data_keys", {}).items():
            name = f"{key}_" if key in RESERVED_DATA_KEYS else key
            (self.external if "external" in spec else self.internal).add(name)
        self.external_only = self.external - self.internal
        for key in RESERVED_DATA_KEYS:
            if f"{key}_" in self.external_only:
                self.external_only.add(key)
