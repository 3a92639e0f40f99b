"""Broken documents (systematic mutations, then hypothesis) get the same verdict as from event-model."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.schema_corpus import BASE_DOCS, disagreement

# ---------------------------------------------------------------------------------------------------
# Broken documents: every value replaced by junk, every key removed, keys added everywhere.

# fmt: off
JUNK: list[Any] = [
    None, True, False, 0, -1, 7, 10**400, 2.0, 2.5, float("nan"), "", "x", "NXdata", "<f8", "float64",
    "FILESTORE:", "linked", "event", "success", [], [1], [1.5], ["x"], [None], [True], [["a", "<f8"]],
    [["a", "f8"]], {}, {"x": 1}, {"a.b": 1}, {"a/b": {"c": 1}}, {"low": 1, "high": None}, {"start": 0, "stop": 1},
    {"type": "static", "value": 1}, {"source": "s", "dtype": "number", "shape": []},
]
# fmt: on
EXTRA_KEYS = ["extra", "x.y", "a/b", ""]


def _paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, child in items:
        yield (*prefix, key)
        yield from _paths(child, (*prefix, key))


def _containers(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    if isinstance(value, dict):
        yield prefix
    if isinstance(value, dict | list):
        for key, child in value.items() if isinstance(value, dict) else enumerate(value):
            yield from _containers(child, (*prefix, key))


def _at(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def mutations(doc: dict) -> Iterator[tuple[str, dict]]:
    for path in list(_paths(doc)):
        for junk in JUNK:
            mutated = copy.deepcopy(doc)
            _at(mutated, path[:-1])[path[-1]] = copy.deepcopy(junk)
            yield f"{path} = {junk!r}", mutated
        if isinstance(_at(doc, path[:-1]), dict):
            mutated = copy.deepcopy(doc)
            del _at(mutated, path[:-1])[path[-1]]
            yield f"del {path}", mutated
    for path in list(_containers(doc)):
        for key in EXTRA_KEYS:
            for value in (1, {"k": 1}, {"k.k": 1}):
                mutated = copy.deepcopy(doc)
                _at(mutated, path)[key] = value
                yield f"{path}[{key!r}] = {value!r}", mutated


@pytest.mark.parametrize(("name", "doc"), BASE_DOCS, ids=[f"{i}-{name}" for i, (name, _) in enumerate(BASE_DOCS)])
def test_mutated_documents_agree_with_event_model(name, doc):
    problems = []
    for what, mutated in mutations(doc):
        problem = disagreement(name, mutated)
        if problem:
            problems.append(f"{what}: {problem}")
    assert not problems, f"{len(problems)} disagreements, first:\n" + "\n".join(problems[:10])


json_keys = st.sampled_from(
    ["a", "b", "x.y", "a/b", "", "uid", "time", "data", "shape", "dtype", "start", "low", "type"]
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=True)
    | st.sampled_from(
        [
            "",
            "x",
            "<f8",
            "|u1",
            ">i4",
            "NXentry",
            "NX",
            "FILESTORE:",
            "STREAM",
            "linked",
            "static",
            "number",
            "posix",
            "fail",
            "a\n",
        ]
    )
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(json_keys, children, max_size=3),
    max_leaves=8,
)


@st.composite
def mutated_documents(draw) -> tuple[str, dict]:
    name, base = draw(st.sampled_from(BASE_DOCS))
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        containers = list(_containers(doc))
        op = draw(st.sampled_from(["replace", "delete", "add"]))
        if op == "add" or not paths:
            target = _at(doc, draw(st.sampled_from(containers)))
            target[draw(json_keys)] = draw(json_values)
            continue
        path = draw(st.sampled_from(paths))
        parent = _at(doc, path[:-1])
        if op == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return name, doc


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_documents())
def test_random_mutations_agree_with_event_model(case):
    name, doc = case
    assert disagreement(name, doc) is None
