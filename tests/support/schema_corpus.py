"""Shared corpus for the schema parity tests: valid documents, legacy forms, event-model verdicts."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any

import event_model

from schemas import MODELS, check_document
from support.corpus import FIXTURES

EM_VALIDATORS = {name: event_model.schema_validators[event_model.DocumentNames[name]] for name in MODELS}


def event_model_accepts(name: str, doc: Any) -> bool:
    return EM_VALIDATORS[name].is_valid(doc)


def ours_accepts(name: str, doc: Any) -> bool:
    return check_document(name, doc) is None


# ---------------------------------------------------------------------------------------------------
# The legacy forms accepted on purpose. Each one is something bluesky-tiled-plugins' RunNormalizer
# converts into a valid event-model 1.24 document, and is still found in real files.


# fmt: off
LEGACY_STREAM_RESOURCE = {
    "uid": "sr-1", "run_start": "start-1", "spec": "AD_HDF5_SWMR_STREAM", "root": "/nsls2/data",
    "resource_path": "det/scan_0001.h5", "resource_kwargs": {"frame_per_point": 1}, "path_semantics": "posix",
}
DESCRIPTOR = {"uid": "desc-1", "run_start": "start-1", "time": 1.0, "name": "primary"}
SCALAR = {"source": "SIM:det", "dtype": "number", "shape": []}
NULL_SHAPE = {"source": "SIM:det", "dtype": "number", "shape": None}

LEGACY_ACCEPTED: list[tuple[str, str, dict, str]] = [
    # (id, document name, document, why it is accepted)
    ("stream-resource-before-1.20", "stream_resource", LEGACY_STREAM_RESOURCE,
     "event-model < 1.20 StreamResource: spec/root/resource_path/resource_kwargs, no mimetype/uri/parameters; "
     "RunNormalizer._convert_resource_to_stream_resource converts it"),
    ("stream-resource-before-1.20-with-data-key", "stream_resource", {**LEGACY_STREAM_RESOURCE, "data_key": "det"},
     "the same with the data_key of later pre-1.20 writers (RunNormalizer keeps it, else sets '')"),
    ("data-key-shape-null", "descriptor", {**DESCRIPTOR, "data_keys": {"det": NULL_SHAPE}},
     "older ophyd wrote shape null for scalars; RunNormalizer.descriptor sets shape to ()"),
    ("configuration-data-key-shape-null", "descriptor",
     {**DESCRIPTOR, "data_keys": {"det": SCALAR},
      "configuration": {"det": {"data": {"g": 2}, "timestamps": {"g": 1.0}, "data_keys": {"g": NULL_SHAPE}}}},
     "RunNormalizer repairs configuration data keys the same way"),
    ("resource-with-legacy-id", "resource",
     {"uid": "r-1", "id": "r-1", "spec": "AD_HDF5", "root": "/data", "resource_path": "a.h5", "resource_kwargs": {}},
     "databroker/filestore-era Resource with an `id` copy of its uid; RunNormalizer leaves it out"),
]

# Forms that need no exception, with the verdict both give. Accepted as they are by event-model 1.24:
# a Resource with root/resource_path and no run_start, DataKey dtype_str/dtype_descr (open DataKey).
# Touched by RunNormalizer but still invalid, as its repair gives no valid document either:
# `external: null` (becomes "", which does not match '^[A-Z]+:?'), a Resource without `root`.
AGREED: list[tuple[str, str, dict, bool]] = [
    ("resource-with-root-and-resource-path-without-run-start", "resource",
     {"uid": "r-1", "spec": "AD_HDF5", "root": "/data", "resource_path": "a.h5", "resource_kwargs": {}}, True),
    ("data-key-dtype-str-and-dtype-descr", "descriptor",
     {**DESCRIPTOR, "data_keys": {"det": {**SCALAR, "dtype": "array", "shape": [2], "dtype_str": "<f8",
                                          "dtype_descr": [["x", "<f8"], ["y", "<i4"]]}}}, True),
    ("data-key-external-null", "descriptor",
     {**DESCRIPTOR, "data_keys": {"img": {**SCALAR, "external": None}}}, False),
    ("resource-without-root", "resource",
     {"uid": "r-1", "spec": "AD_HDF5", "resource_path": "a.h5", "resource_kwargs": {}}, False),
]
# fmt: on


def repair_legacy(name: str, doc: Any) -> dict | None:
    """The listed legacy forms converted to event-model 1.24 (as RunNormalizer does), else None."""
    if not isinstance(doc, dict):
        return None
    if name == "stream_resource" and "mimetype" not in doc:
        return {
            **doc,
            "mimetype": "application/x-hdf5",
            "uri": "file://localhost/data",
            "parameters": {},
            "data_key": doc.get("data_key", ""),
        }
    if name == "descriptor":
        repaired = copy.deepcopy(doc)
        changed = False
        data_key_maps = [repaired.get("data_keys")]
        configuration = repaired.get("configuration")
        if isinstance(configuration, dict):
            data_key_maps += [c.get("data_keys") for c in configuration.values() if isinstance(c, dict)]
        for data_keys in data_key_maps:
            if not isinstance(data_keys, dict):
                continue
            for data_key in data_keys.values():
                if isinstance(data_key, dict) and "shape" in data_key and data_key["shape"] is None:
                    data_key["shape"] = []
                    changed = True
        return repaired if changed else None
    if name == "resource" and "id" in doc:
        return {k: v for k, v in doc.items() if k != "id"}
    return None


def disagreement(name: str, doc: Any) -> str | None:
    """None when the verdicts agree (or differ only by a listed legacy form), else what differs."""
    ours, theirs = ours_accepts(name, doc), event_model_accepts(name, doc)
    if ours == theirs:
        return None
    if ours and not theirs:
        repaired = repair_legacy(name, doc)
        if repaired is not None and event_model_accepts(name, repaired):
            return None
        return f"{name}: we accept, event-model rejects: {doc!r:.300}"
    return f"{name}: we reject ({check_document(name, doc)}), event-model accepts: {doc!r:.300}"


# ---------------------------------------------------------------------------------------------------
# Valid documents: composed with event-model, hand-written to cover every optional field.


def _json(doc: Any) -> Any:
    # Documents reach us from JSON files: lists, not tuples.
    return json.loads(json.dumps(doc))


# fmt: off
def composed_run() -> list[tuple[str, dict]]:
    run = event_model.compose_run(metadata={
        "plan_name": "count", "sample": {"name": "Si"}, "hints": {"dimensions": [[["time"], "primary"]]},
    })
    desc = run.compose_descriptor(
        name="primary",
        data_keys={
            "det": {"source": "SIM:det", "dtype": "number", "shape": [], "dtype_numpy": "<f8", "units": "ct"},
            "img": {"source": "SIM:img", "dtype": "array", "shape": [4, 5], "external": "FILESTORE:"},
            "frames": {"source": "SIM:frames", "dtype": "array", "shape": [None, 8], "external": "STREAM:"},
        },
        configuration={"det": {"data": {"det_gain": 2}, "timestamps": {"det_gain": 1.0},
                               "data_keys": {"det_gain": {"source": "SIM:gain", "dtype": "integer", "shape": []}}}},
        object_keys={"det": ["det"], "img": ["img"], "frames": ["frames"]},
        hints={"det": {"fields": ["det"]}},
    )
    resource = run.compose_resource(spec="AD_HDF5", root="/data", resource_path="img.h5",
                                    resource_kwargs={"frame_per_point": 1})
    datum = resource.compose_datum(datum_kwargs={"point_number": 0})
    datum_page = resource.compose_datum_page(datum_kwargs={"point_number": [1, 2]})
    event = desc.compose_event(data={"det": 1.5, "img": datum["datum_id"]}, timestamps={"det": 1.0, "img": 1.0},
                               filled={"img": False}, seq_num=1)
    event_page = desc.compose_event_page(
        data={"det": [2.5, 3.5], "img": datum_page["datum_id"]}, timestamps={"det": [2.0, 3.0], "img": [2.0, 3.0]},
        filled={"img": [False, False]}, seq_num=[2, 3], time=[2.0, 3.0], uid=["e-2", "e-3"],
    )
    stream_resource = run.compose_stream_resource(mimetype="application/x-hdf5", uri="file://localhost/data/f.h5",
                                                  data_key="frames", parameters={"dataset": "/entry/data"})
    stream_datum = stream_resource.compose_stream_datum(
        indices=event_model.StreamRange(start=0, stop=3), seq_nums=event_model.StreamRange(start=1, stop=4),
        descriptor=desc.descriptor_doc,
    )
    docs = [
        ("start", run.start_doc), ("descriptor", desc.descriptor_doc), ("resource", resource.resource_doc),
        ("datum", datum), ("datum_page", datum_page), ("event", event), ("event_page", event_page),
        ("stream_resource", stream_resource.stream_resource_doc), ("stream_datum", stream_datum),
        ("stop", run.compose_stop(exit_status="success", reason="done")),
    ]
    return [(name, _json(doc)) for name, doc in docs]
# fmt: on


# Every optional field of every document, so that mutations reach each of them.
# fmt: off
LIMITS = {
    "control": {"low": -10, "high": 10.5}, "display": {"low": None, "high": 10}, "alarm": None,
    "warning": {"low": -1, "high": 1}, "hysteresis": 0.1, "rds": {"time_difference": 5, "value_difference": 0.5},
}
PROJECTION = {
    "name": "nxsas", "version": "1", "configuration": {"a": 1},
    "projection": {
        "c": {"type": "linked", "location": "configuration", "stream": "primary", "field": "f",
              "config_device": "d", "config_index": 0},
        "l": {"type": "linked", "location": "event", "stream": "primary", "field": "f"},
        "k": {"type": "calculated", "location": "event", "stream": "primary", "field": "f",
              "calculation": {"callable": "m:f", "args": [1], "kwargs": {"a": 1}}},
        "s": {"type": "static", "value": [1, 2]},
    },
}
RICH_DOCS: list[tuple[str, dict]] = [
    ("start", {
        "uid": "start-1", "time": 1.0, "scan_id": 3, "plan_name": "scan", "data_groups": ["p1"],
        "data_session": "s", "group": "g", "owner": "o", "project": "pr", "sample": "Si",
        "md": {"nested": {"deep": [1, {"x.y": 2}]}}, "data_type": {"a": {"b": 1}},
        "hints": {"dimensions": [[["motor"], "primary"]], "gridding": "rectilinear"},
        "projections": [PROJECTION],
    }),
    ("descriptor", {
        "uid": "desc-1", "run_start": "start-1", "time": 1.0, "name": "primary",
        "data_keys": {
            "m": {"source": "PV:m", "dtype": "number", "shape": [], "dtype_numpy": "<f8", "precision": 3,
                  "units": None, "limits": LIMITS, "choices": ["a"], "dims": ["x"], "object_name": "m"},
            "s": {"source": "PV:s", "dtype": "array", "shape": [2], "external": "STREAM:",
                  "dtype_numpy": [["x", "<f8"], ["y", "|u1"]]},
        },
        "configuration": {"m": {"data": {"m_v": 1}, "timestamps": {"m_v": 1.0},
                                "data_keys": {"m_v": {"source": "PV:v", "dtype": "number", "shape": []}}}},
        "hints": {"NX_class": "NXmotor", "fields": ["m"], "m": {"fields": ["m"]}},
        "object_classes": {"m": "ophyd.EpicsMotor"}, "object_keys": {"m": ["m"]}, "extra_info": {"a": [1]},
    }),
    ("event", {"uid": "e-1", "descriptor": "desc-1", "seq_num": 1, "time": 1.0, "data": {"m": 1, "img": "dat-1"},
               "timestamps": {"m": 1.0, "img": 1.0}, "filled": {"img": "dat-1", "m": True}}),
    ("event_page", {"uid": ["e-1", "e-2"], "descriptor": "desc-1", "seq_num": [1, 2], "time": [1.0, 2],
                    "data": {"m": [1, 2]}, "timestamps": {"m": [1.0, 2.0]}, "filled": {"m": [True, "x"]}}),
    ("resource", {"uid": "r-1", "spec": "AD_HDF5", "root": "/", "resource_path": "a.h5", "resource_kwargs": {"a": 1},
                  "path_semantics": "windows", "run_start": "start-1"}),
    ("datum", {"datum_id": "r-1/0", "resource": "r-1", "datum_kwargs": {"point_number": 0}}),
    ("datum_page", {"datum_id": ["r-1/0"], "resource": "r-1", "datum_kwargs": {"point_number": [0]}}),
    ("stream_resource", {"uid": "sr-1", "data_key": "s", "mimetype": "application/x-hdf5", "spec": "X",
                         "uri": "file://localhost/a.h5", "parameters": {"dataset": "/d"}, "run_start": "start-1"}),
    ("stream_datum", {"uid": "sd-1", "stream_resource": "sr-1", "descriptor": "desc-1", "extra": 1,
                      "indices": {"start": 0, "stop": 2}, "seq_nums": {"start": 1, "stop": 3}}),
    ("stop", {"uid": "stop-1", "run_start": "start-1", "time": 2.0, "exit_status": "abort", "reason": "r",
              "num_events": {"primary": 3}, "data_type": 5, "note": {"a.b": 1}}),
] + [(name, doc) for _, name, doc, _ in LEGACY_ACCEPTED]
# fmt: on

BASE_DOCS = composed_run() + RICH_DOCS


# ---------------------------------------------------------------------------------------------------
# Fixture files, parsed here in the simplest way (the real reader is `ingester`'s business).


def fixture_files() -> list[Path]:
    found = {p for pattern in ("**/*.jsonl", "**/*.json", "**/*.gz") for p in FIXTURES.glob(pattern) if p.is_file()}
    return sorted(found)


def _as_pair(item: Any) -> tuple[str, dict] | None:
    if isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], dict):
        return item[0], item[1]
    if isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("doc"), dict):
        return item["name"], item["doc"]
    return None


def read_fixture(path: Path) -> list[tuple[str, dict]]:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError):
            return []
    text = raw.decode("utf-8", errors="replace")
    try:
        whole = json.loads(text)
    except ValueError:
        items = []
        for line in text.splitlines():
            try:
                items.append(json.loads(line))
            except ValueError:
                continue
    else:
        items = [whole] if _as_pair(whole) or not isinstance(whole, list) else whole
    pairs = (_as_pair(item) for item in items)
    return [pair for pair in pairs if pair is not None and pair[0] in MODELS]


FIXTURE_FILES = fixture_files()
