"""Parity of `schemas` with event-model 1.24: legacy forms, valid documents, fixtures, public surface."""

# Every document must get the same verdict from `schemas.check_document` as from
# `event_model.schema_validators`, except for the legacy forms that `schemas` accepts on purpose: those
# are listed in `schema_corpus.LEGACY_ACCEPTED`, with the reason, and the test asserts that event-model
# really rejects each one (so the list stays honest). Broken variants: test_schemas_mutations.py.

from __future__ import annotations

import math
import timeit

import event_model
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from schemas import MODELS, check_document
from support.schema_corpus import (
    AGREED,
    BASE_DOCS,
    FIXTURE_FILES,
    FIXTURES,
    LEGACY_ACCEPTED,
    disagreement,
    event_model_accepts,
    read_fixture,
    repair_legacy,
)

# ---------------------------------------------------------------------------------------------------
# The legacy forms accepted on purpose, and the forms that need no exception.


@pytest.mark.parametrize(
    ("name", "doc", "reason"), [case[1:] for case in LEGACY_ACCEPTED], ids=[c[0] for c in LEGACY_ACCEPTED]
)
def test_legacy_form_is_rejected_by_event_model_and_accepted_here(name, doc, reason):
    assert not event_model_accepts(name, doc), f"event-model accepts it; drop it from the list ({reason})"
    assert check_document(name, doc) is None
    assert event_model_accepts(name, repair_legacy(name, doc))


@pytest.mark.parametrize(("name", "doc", "valid"), [c[1:] for c in AGREED], ids=[c[0] for c in AGREED])
def test_forms_needing_no_exception(name, doc, valid):
    assert event_model_accepts(name, doc) is valid
    assert (check_document(name, doc) is None) is valid


# ---------------------------------------------------------------------------------------------------
# Valid documents: composed with event-model, hand-written to cover every optional field.


@pytest.mark.parametrize(("name", "doc"), BASE_DOCS, ids=[f"{i}-{name}" for i, (name, _) in enumerate(BASE_DOCS)])
def test_valid_documents_are_accepted(name, doc):
    assert check_document(name, doc) is None
    assert disagreement(name, doc) is None


# ---------------------------------------------------------------------------------------------------
# Fixture files, parsed in the simplest way (see schema_corpus.read_fixture).


@pytest.mark.parametrize(
    "path",
    FIXTURE_FILES or [pytest.param(None, marks=pytest.mark.skip(reason="no fixture files yet"))],
    ids=[str(p.relative_to(FIXTURES)) for p in FIXTURE_FILES] or ["none"],
)
def test_fixture_documents_agree_with_event_model(path):
    problems = [p for name, doc in read_fixture(path) if (p := disagreement(name, doc))]
    assert not problems, "\n".join(problems[:10])


def test_fixtures_hold_documents_of_every_kind_when_present():
    if not FIXTURE_FILES:
        pytest.skip("no fixture files yet")
    names = {name for path in FIXTURE_FILES for name, _ in read_fixture(path)}
    assert {"start", "descriptor", "event", "stop"} <= names


# ---------------------------------------------------------------------------------------------------
# The public surface: names, reasons, never raising.


def test_models_cover_every_event_model_document_but_the_bulk_ones():
    expected = {n.name for n in event_model.DocumentNames} - {"bulk_events", "bulk_datum"}
    assert set(MODELS) == expected


_EVENT = {"uid": "u", "descriptor": "d", "seq_num": 1, "time": 1.0, "data": {}, "timestamps": {}}
_DTYPE_ENUM = "input should be 'string', 'number', 'array', 'boolean' or 'integer'"


# fmt: off
@pytest.mark.parametrize(("name", "doc", "reason"), [
    ("event", {k: v for k, v in _EVENT.items() if k != "uid"}, "missing required field 'uid'"),
    ("descriptor", {"uid": "d", "run_start": "s", "time": 1.0,
                    "data_keys": {"det": {"source": "s", "dtype": "float64", "shape": []}}},
     f"field 'data_keys.det.dtype': {_DTYPE_ENUM}"),
    ("event", {**_EVENT, "seq_num": True}, "field 'seq_num': input should be a valid integer"),
    ("event", {**_EVENT, "time": "1"}, "field 'time': input should be a valid number"),
    ("event", {**_EVENT, "x": 1}, "unexpected field 'x'"),
    ("event", {**_EVENT, "filled": {"img": None}}, "field 'filled.img': input should be a boolean or a string"),
    ("stop", {"uid": "u", "run_start": "s", "time": 1.0, "exit_status": "ok"},
     "field 'exit_status': input should be 'success', 'abort' or 'fail'"),
    ("stream_datum", {"uid": "u", "stream_resource": "s", "descriptor": "d", "indices": {"start": 0},
                      "seq_nums": {"start": 1, "stop": 2}}, "missing required field 'indices.stop'"),
    ("start", {"uid": "u", "time": 1.0, "md": {"a.b": 1}}, "key 'a.b' in field 'md' is not allowed"),
    ("evnet", {}, "unknown document name 'evnet'"),
])
# fmt: on
def test_reasons_name_the_field_and_why(name, doc, reason):
    assert check_document(name, doc).startswith(reason)


junk_dicts = st.dictionaries(
    st.one_of(st.text(max_size=3), st.integers(), st.none()),
    st.recursive(
        st.one_of(
            st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4), st.binary(max_size=2)
        ),
        lambda children: (
            st.lists(children, max_size=3)
            | st.tuples(children, children)
            | st.dictionaries(st.one_of(st.text(max_size=3), st.integers()), children, max_size=3)
        ),
        max_leaves=10,
    ),
    max_size=6,
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([*MODELS, "nonsense"]), junk_dicts)
@example("start", {"\n": {"": None}})  # a field name with a newline: the reason stays one line
def test_check_document_never_raises(name, doc):
    reason = check_document(name, doc)
    assert reason is None or (isinstance(reason, str) and "\n" not in reason)


def test_check_document_survives_cycles_and_non_dicts():
    cyclic: dict = {}
    cyclic["self"] = cyclic
    assert isinstance(check_document("start", {"uid": "u", "time": 1.0, "md": cyclic}), str)
    assert isinstance(check_document("event", [1, 2]), str)  # type: ignore[arg-type]
    assert isinstance(check_document(None, {}), str)  # type: ignore[arg-type]


def test_event_check_is_fast():
    # Loose guard against a regression of the hot path (measured ~1.3 us; the bound allows slow CI).
    event = {
        "uid": "8b0e3d3a-5f4e-4c1e-9a0b-1234567890ab",
        "descriptor": "1b0e3d3a-5f4e-4c1e-9a0b-1234567890ab",
        "seq_num": 17,
        "time": 1700000000.123,
        "data": {f"k{i}": 1.5 * i for i in range(8)},
        "timestamps": {f"k{i}": 1700000000.1 for i in range(8)},
    }
    assert check_document("event", event) is None
    seconds = min(timeit.repeat(lambda: check_document("event", event), number=2000, repeat=5)) / 2000
    assert seconds < 25e-6, f"{seconds * 1e6:.1f} us per event"
    assert not math.isnan(seconds)
