"""Parity of ingester.read.normalize_descriptor with bluesky-tiled-plugins' RunNormalizer.descriptor.

The same descriptors (every descriptor of every fixture file, and hand-made edge cases) go through
RunNormalizer (what it emits, its notes, or the error it raises) and through DescriptorNormalizer;
the results must be identical. Also: a scalar run is ingested without importing bluesky-tiled-plugins.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
from bluesky_tiled_plugins.writing.tiled_writer import JSON_TO_NUMPY_DTYPE, RunNormalizer

from ingester.read.normalize_descriptor import JSON_DTYPE_TO_NUMPY, DescriptorNormalizer
from ingester.read.reader import read_documents
from support.corpus import FIXTURES


def _fixture_runs() -> list[tuple[str, list[dict]]]:
    """The descriptors of each fixture file, in file order (files that cannot be read are skipped)."""
    runs = []
    for path in sorted(p for p in FIXTURES.rglob("*") if p.is_file() and ".json" in p.name):
        descriptors = []
        try:
            for document in read_documents(path):
                if document.name == "descriptor" and isinstance(document.doc, dict):
                    descriptors.append(document.doc)
        except Exception:  # noqa: BLE001 - bad fixtures: keep what was read before the fault
            pass
        if descriptors:
            runs.append((str(path.relative_to(FIXTURES)), descriptors))
    return runs


def _theirs(descriptors: list[dict]) -> list:
    normalizer = RunNormalizer()
    emitted: list = []
    normalizer.subscribe(lambda name, doc: emitted.append(doc) if name == "descriptor" else None)
    results = []
    for descriptor in descriptors:
        before = len(emitted)
        try:
            normalizer.descriptor(copy.deepcopy(descriptor))
        except Exception as error:  # noqa: BLE001
            results.append(("error", type(error).__name__, str(error).splitlines()[0]))
            continue
        results.append(("ok", emitted[before], list(normalizer.notes)))
    return results


def _ours(descriptors: list[dict]) -> list:
    normalizer = DescriptorNormalizer()
    results = []
    for descriptor in descriptors:
        pristine = copy.deepcopy(descriptor)
        try:
            doc = normalizer(descriptor)
        except Exception as error:  # noqa: BLE001
            results.append(("error", type(error).__name__, str(error).splitlines()[0]))
            continue
        finally:
            assert descriptor == pristine, "the descriptor given must not be modified"
        results.append(("ok", doc, list(normalizer.notes)))
    return results


def _assert_same(descriptors: list[dict]) -> None:
    theirs, ours = _theirs(descriptors), _ours(descriptors)
    assert ours == theirs
    for (_, our_doc, _), (_, their_doc, _) in ((o, t) for o, t in zip(ours, theirs, strict=True) if o[0] == "ok"):
        assert list(our_doc["data_keys"]) == list(their_doc["data_keys"])  # renamed keys move to the end
        for key, spec in their_doc["data_keys"].items():
            assert type(our_doc["data_keys"][key].get("shape")) is type(spec.get("shape"))


FIXTURE_RUNS = _fixture_runs()


def test_fixtures_have_descriptors():
    assert len(FIXTURE_RUNS) >= 10


@pytest.mark.parametrize("name,descriptors", FIXTURE_RUNS, ids=[name for name, _ in FIXTURE_RUNS])
def test_fixture_descriptors(name: str, descriptors: list[dict]) -> None:
    _assert_same(descriptors)


def _descriptor(uid: str, data_keys: dict, **extra) -> dict:
    return {
        "uid": uid,
        "run_start": "r",
        "time": 1.0,
        "name": extra.pop("name", "primary"),
        "data_keys": data_keys,
        **extra,
    }


def _key(**spec) -> dict:
    return {"source": "s", "dtype": "number", "shape": [], **spec}


CASES = {
    "reserved keys, object keys, notes": [
        _descriptor(
            "d1",
            {"time": _key(), "a": _key(), "seq_num": _key(dtype="integer")},
            object_keys={"m": ["time", "a"], "n": ["seq_num"]},
        ),
    ],
    "reserved key clash": [_descriptor("d1", {"time": _key(), "time_": _key()})],
    "dtype precedence": [
        _descriptor(
            "d1",
            {
                "descr": _key(dtype="array", shape=[2], dtype_descr=[["x", "<f4"], ["y", "<i2"]], dtype_numpy="<f8"),
                "numpy": _key(dtype_numpy="<i4", dtype_str="<f2"),
                "str": _key(dtype_str="<u2"),
                "empty_numpy": _key(dtype="integer", dtype_numpy=""),
                "bool": _key(dtype="boolean"),
                "string": _key(dtype="string"),
            },
        ),
    ],
    "shape None, configuration keys": [
        _descriptor(
            "d1",
            {"a": _key(shape=None)},
            configuration={
                "dev": {
                    "data": {"g": 1},
                    "timestamps": {"g": 0.0},
                    "data_keys": {"g": _key(dtype="integer", shape=None, dtype_str="<i2")},
                }
            },
        ),
    ],
    "configuration without data keys": [_descriptor("d1", {"a": _key()}, configuration={"dev": {"data": {}}})],
    "object key not in data keys": [_descriptor("d1", {"a": _key()}, object_keys={"m": ["b"]})],
    "external None and external across descriptors": [
        _descriptor("d1", {"img": _key(dtype="array", shape=[2, 2], external=None), "x": _key()}),
        _descriptor("d2", {"img": _key(dtype="array", shape=[2, 2]), "x": _key(external="STREAM:")}, name="other"),
        _descriptor("d3", {"x": _key(), "img": _key(dtype="array", shape=[2, 2])}),
    ],
    "schema refusal after normalization": [_descriptor("d1", {"a": _key(dtype="complex")})],
}


@pytest.mark.parametrize("case", list(CASES))
def test_edge_cases(case: str) -> None:
    _assert_same(CASES[case])


def test_json_dtypes_match():
    assert JSON_DTYPE_TO_NUMPY == JSON_TO_NUMPY_DTYPE


def test_reading_and_writing_modules_do_not_import_bluesky_tiled_plugins() -> None:
    """Reading, normalizing and spooling a run without external documents, and importing the
    writer, import neither bluesky-tiled-plugins nor xarray, dask or pandas."""
    code = f"""
import sys
from pathlib import Path
import ingester.write.writer
from ingester.read.single_pass import read_once
from ingester.read.spool import RowSpool
with RowSpool() as spool:
    found = read_once(Path({str(FIXTURES / "good" / "scan_baseline.jsonl")!r}), spool)
    assert found.normalized and not found.failed
    for uid in found.normalized:
        assert sum(block.length for _, block in spool.blocks(uid)) > 0
print(sorted(m for m in sys.modules if m.split(".")[0] in ("bluesky_tiled_plugins", "xarray", "dask", "pandas")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
