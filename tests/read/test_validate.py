"""The validator: whole-run rules, statuses, and that no input makes it raise."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import event_model
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingester.read.validate import validate_file


def scalar_run(events: int = 3, *, uid: str | None = None) -> list[list]:
    run = event_model.compose_run(uid=uid)
    desc = run.compose_descriptor(name="primary", data_keys={"x": {"source": "sim", "dtype": "number", "shape": []}})
    docs = [["start", run.start_doc], ["descriptor", desc.descriptor_doc]]
    for i in range(events):
        docs.append(["event", desc.compose_event(data={"x": float(i)}, timestamps={"x": 1.0}, seq_num=i + 1)])
    docs.append(["stop", run.compose_stop()])
    return docs


def legacy_run() -> list[list]:
    run = event_model.compose_run()
    desc = run.compose_descriptor(
        name="primary",
        data_keys={"img": {"source": "sim", "dtype": "array", "shape": [2, 2], "external": "FILESTORE:"}},
    )
    res = run.compose_resource(spec="NPY_SEQ", root="", resource_path="data/img", resource_kwargs={})
    datums = [res.compose_datum(datum_kwargs={"index": i}) for i in range(2)]
    docs = [["start", run.start_doc], ["descriptor", desc.descriptor_doc], ["resource", res.resource_doc]]
    docs.append(["event", desc.compose_event(data={"img": datums[0]["datum_id"]}, timestamps={"img": 1.0}, seq_num=1)])
    docs += [["datum", d] for d in datums]  # the first datum after its event: allowed, as TiledWriter does
    docs.append(["event", desc.compose_event(data={"img": datums[1]["datum_id"]}, timestamps={"img": 1.0}, seq_num=2)])
    docs.append(["stop", run.compose_stop()])
    return docs


def stream_run() -> list[list]:
    run = event_model.compose_run()
    desc = run.compose_descriptor(
        name="primary",
        data_keys={
            "det": {"source": "sim", "dtype": "array", "shape": [1, 4, 4], "external": "STREAM:"},
            "total": {"source": "sim", "dtype": "number", "shape": []},
        },
    )
    sres = run.compose_stream_resource(mimetype="application/x-hdf5", uri="data/det.h5", data_key="det", parameters={})
    docs = [
        ["start", run.start_doc],
        ["descriptor", desc.descriptor_doc],
        ["stream_resource", sres.stream_resource_doc],
    ]
    for i in range(2):
        docs.append(
            [
                "stream_datum",
                sres.compose_stream_datum(indices={"start": i, "stop": i + 1}, descriptor=desc.descriptor_doc),
            ]
        )
        docs.append(["event", desc.compose_event(data={"total": 1.0}, timestamps={"total": 1.0}, seq_num=i + 1)])
    docs.append(["stop", run.compose_stop()])
    return docs


def write(tmp_path: Path, docs: list[list], name: str = "run.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


@pytest.mark.parametrize("make", [scalar_run, legacy_run, stream_run])
def test_valid_runs_are_ok(tmp_path, make):
    report = validate_file(write(tmp_path, make()))
    assert report.status == "ok", [str(p) for p in report.all_problems()]
    assert [run.status for run in report.runs] == ["ok"]
    assert report.runs[0].streams == {"primary": 2 if make is not scalar_run else 3}


def test_two_runs_in_one_file_are_split(tmp_path):
    first, second = scalar_run(2), scalar_run(4)
    report = validate_file(write(tmp_path, first + second))
    assert [(r.uid, r.status, r.streams) for r in report.runs] == [
        (first[0][1]["uid"], "ok", {"primary": 2}),
        (second[0][1]["uid"], "ok", {"primary": 4}),
    ]
    assert report.runs[1].line == len(first) + 1


def test_run_without_stop_is_incomplete_not_invalid(tmp_path):
    report = validate_file(write(tmp_path, scalar_run()[:-1]))
    assert report.status == "incomplete" and report.runs[0].status == "incomplete"
    assert report.all_problems() == []


def _break(docs, index, mutate):
    docs = copy.deepcopy(docs)
    result = mutate(docs[index][1])
    if result is not None:
        docs[index] = result
    return docs


CASES = {
    "unknown descriptor": (scalar_run(), 3, lambda d: d.update(descriptor="nope"), 4),
    "seq_num 1 does not increase": (scalar_run(), 3, lambda d: d.update(seq_num=1), 4),
    "keys do not match": (scalar_run(), 2, lambda d: (d["data"].update(y=1), d["timestamps"].update(y=1)), 3),
    "duplicate uid": (scalar_run(), 3, None, 4),
    "stop is for another run": (scalar_run(), 5, lambda d: d.update(run_start="another-run"), 6),
    "a second start": (scalar_run(), 1, None, 2),
    "unknown resource": (legacy_run(), 5, lambda d: d.update(resource="nope"), 6),
    "unknown stream_resource": (stream_run(), 3, lambda d: d.update(stream_resource="nope"), 4),
    "before any start": (scalar_run(), 0, None, 1),
    "after the run's stop": (scalar_run(), 5, None, 7),
}


@pytest.mark.parametrize("reason", CASES)
def test_cross_document_faults_name_line_and_reason(tmp_path, reason):
    docs, index, mutate, line = CASES[reason]
    docs = copy.deepcopy(docs)
    if reason == "duplicate uid":
        docs[index][1]["uid"] = docs[index - 1][1]["uid"]
    elif reason == "a second start":
        docs.insert(1, copy.deepcopy(docs[0]))
    elif reason == "before any start":
        docs = docs[1:]
    elif reason == "after the run's stop":
        docs.append(copy.deepcopy(docs[2]))
        docs[-1][1]["uid"] = "late-event"
        docs[-1][1]["seq_num"] = 99
    else:
        mutate(docs[index][1])
    report = validate_file(write(tmp_path, docs))
    assert report.status == "invalid"
    problems = report.all_problems()
    assert any(reason in p.reason and p.line == line for p in problems), [str(p) for p in problems]


def test_schema_failure_names_the_field(tmp_path):
    docs = scalar_run()
    docs[1][1]["data_keys"]["x"]["dtype"] = "float64"
    report = validate_file(write(tmp_path, docs))
    (problem, *_) = report.all_problems()
    assert problem.line == 2 and problem.name == "descriptor" and "dtype" in problem.reason


def test_unknown_document_name(tmp_path):
    docs = scalar_run()
    docs.insert(2, ["bulk_events", {}])
    report = validate_file(write(tmp_path, docs))
    assert any(p.line == 3 and "bulk_events" in p.reason for p in report.all_problems())


def test_datum_missing_for_an_event(tmp_path):
    docs = [d for d in legacy_run() if not (d[0] == "datum" and d[1]["datum_id"].endswith("/1"))]
    report = validate_file(write(tmp_path, docs))
    assert any("datum" in p.reason and "not in the run" in p.reason for p in report.all_problems())


def test_external_key_without_stream_resource(tmp_path):
    docs = [d for d in stream_run() if d[0] not in ("stream_resource", "stream_datum")]
    report = validate_file(write(tmp_path, docs))
    assert any("has no stream_resource" in p.reason and p.line == 2 for p in report.all_problems())


def test_event_page_counts_rows(tmp_path):
    docs = scalar_run(4)
    events = [d[1] for d in docs if d[0] == "event"]
    page = event_model.pack_event_page(*events)
    docs = docs[:2] + [["event_page", page]] + docs[-1:]
    report = validate_file(write(tmp_path, docs))
    assert report.status == "ok" and report.runs[0].streams == {"primary": 4}


_fuzz = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_JUNK = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@_fuzz
@given(st.data())
def test_fuzz_mutated_documents_never_raise_unhandled(tmp_path, data):
    docs = copy.deepcopy(data.draw(st.sampled_from([scalar_run(2), legacy_run(), stream_run()])))
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(docs) - 1))
        doc = docs[index][1]
        key = data.draw(st.sampled_from(sorted(doc) + ["extra"]))
        if data.draw(st.booleans()):
            doc[key] = data.draw(_JUNK)
        else:
            doc.pop(key, None)
    report = validate_file(write(tmp_path, docs))
    assert report.status in ("ok", "incomplete", "invalid")
    for problem in report.all_problems():
        assert problem.reason and problem.path.endswith("run.jsonl")
