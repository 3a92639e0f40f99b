"""Issue 14: every legacy form and awkward key that beamlines wrote ingests (or is refused saying why),
end to end through `ingest-dir`, into the embedded catalog and into a Tiled server, read back through
bluesky-tiled-plugins' BlueskyRun client and checked with its validator."""

from __future__ import annotations

import json

import numpy
import pytest
from bluesky_tiled_plugins.writing.validator import validate

from support.facility import Target, event_values, facility_uid, file_data

INGESTED = [
    "resource_legacy_id.jsonl",
    "column_collisions.jsonl",
    "stream_resource_zeros.jsonl",
    "detector_shapes.jsonl",
    "stream_key_with_datums.jsonl",
    "filled_with_datum_ids.jsonl",
]
COLLIDING = ["det", "Time", "Seq_Num", "I0", "i0", "TS_det", "mon", "ts_mon"]


@pytest.fixture(params=["embedded", "server"])
def target(request, tmp_path):
    server = request.getfixturevalue("server") if request.param == "server" else None
    return Target(tmp_path, server)


def passes_validator(run) -> bool:
    return validate(run, fix_errors=False, try_reading=True, raise_on_error=True, write_notes=False)


def test_every_facility_form_is_ingested_and_reads_back(target, tmp_path):
    report = tmp_path / "report.json"
    result = target.ingest(*INGESTED, "--report", str(report))
    assert result.exit_code == 0, result.output
    statuses = {e["path"].rsplit("/", 1)[-1]: e["status"] for e in json.loads(report.read_text())["files"]}
    assert statuses == dict.fromkeys(INGESTED, "ingested")
    with target.client() as root:
        for name in INGESTED:
            for n in range(2 if name == "detector_shapes.jsonl" else 1):
                run = root[facility_uid(name, n)]
                assert passes_validator(run), name
                assert run.metadata["_ingest"]["state"] == "complete"

        legacy = root[facility_uid("resource_legacy_id.jsonl")]
        assert [line.split(":")[0] for line in legacy.metadata["_ingest"]["legacy"]] == ["resource-id"]
        frames = legacy["primary"]["ccd_image"].read()
        numpy.testing.assert_array_equal(frames, file_data("legacy-id.h5").reshape(frames.shape))

        zeros = root[facility_uid("stream_resource_zeros.jsonl")]["primary"].base["saxs"]
        assert tuple(zeros.shape) == (3, 6, 8) and tuple(c[0] for c in zeros.chunks) == (1, 6, 8)
        numpy.testing.assert_array_equal(zeros.read(), file_data("zeros.h5"))

        for n in (0, 1):  # the image declared [6, 8] in one run and [1, 6, 8] in the other: the file decides
            node = root[facility_uid("detector_shapes.jsonl", n)]["primary"].base["waxs"]
            assert tuple(node.shape) == (2, 6, 8)
            numpy.testing.assert_array_equal(node.read(), file_data(f"shapes-{n}.h5"))

        run = root[facility_uid("stream_key_with_datums.jsonl")]
        forms = {line.split(":")[0] for line in run.metadata["_ingest"]["legacy"]}
        assert forms == {"stream-key-with-datums", "filestore-without-colon"}
        cam, roi = run["primary"]["cam"].read(), run["primary"]["roi"].read()
        numpy.testing.assert_array_equal(cam, file_data("stream-key.h5").reshape(cam.shape))
        numpy.testing.assert_array_equal(roi, file_data("filestore-key.h5"))
        assert cam.shape[0] == roi.shape[0] == 3

        # The filled values are internal data, in the table as TiledWriter puts them (a list<int64> column,
        # which Tiled's SQL storage reads back as text).
        table = root[facility_uid("filled_with_datum_ids.jsonl")]["primary"].base["internal"]
        assert str(table.structure().arrow_schema_decoded.field("spectrum").type) == "list<item: int64>"
        spectra = event_values("filled_with_datum_ids.jsonl", "primary", "spectrum")
        assert table.read()["spectrum"].to_list() == [str(numpy.array(v)) for v in spectra]


def test_keys_colliding_with_table_columns_read_back_under_their_own_keys(target):
    name = "column_collisions.jsonl"
    result = target.ingest(name)
    assert result.exit_code == 0, result.output
    with target.client() as root:
        run = root[facility_uid(name)]
        assert passes_validator(run)
        stream = run["primary"]
        columns = set(stream.base["internal"].columns)
        assert {c.lower() for c in columns} == {c.lower() for c in columns} and len(
            {c.lower() for c in columns}
        ) == len(columns)
        for key in COLLIDING:  # every value of every key, under its own key
            numpy.testing.assert_array_equal(stream[key].read(), event_values(name, "primary", key), err_msg=key)
        for key in ("det", "mon", "I0", "i0", "Time"):  # and their timestamps
            timestamps = event_values(name, "primary", key, "timestamps")
            stored = "ts_mon_" if key == "mon" else f"ts_{key}"  # `ts_mon` is a data key of its own
            numpy.testing.assert_array_equal(stream[stored].read(), timestamps, err_msg=stored)
        data = stream.read()  # the BlueskyRun client's dataset: every data key but those spelled ts_*
        assert {"det", "Time", "Seq_Num", "I0", "i0", "TS_det", "mon"} <= set(data.data_vars)
        assert data.sizes["time"] == 4
        assert list(run["baseline"].read()["temperature"].values) == [295.0, 296.5]
        notes = run.metadata["notes"]
        assert any("'Time'" in note and "'time'" in note for note in notes), notes


def test_a_resource_that_names_no_file_is_refused_saying_so(target):
    result = target.ingest("computed_resource.jsonl")
    assert result.exit_code == 1, result.output
    path = target.path("computed_resource.jsonl")
    assert f"{path}:3: resource " in result.output
    assert "resource spec 'newton' names no file (root '/')" in result.output
    with target.client() as root:
        assert facility_uid("computed_resource.jsonl") not in root


def test_missing_detector_files_refuse_the_run_unless_skipped(target, tmp_path):
    name = "missing_detector_file.jsonl"
    refused = target.ingest(name)
    assert refused.exit_code == 1, refused.output
    assert "external file does not exist" in refused.output and "lost-pilatus.h5" in refused.output
    uid = facility_uid(name)
    with target.client() as root:
        assert uid not in root

    report = tmp_path / "skip.json"
    skipped = target.ingest(
        name, "computed_resource.jsonl", "--on-missing-file", "skip", "--replace", "--report", str(report)
    )
    assert skipped.exit_code == 0, skipped.output
    entries = {e["path"].rsplit("/", 1)[-1]: e for e in json.loads(report.read_text())["files"]}
    entry = entries[name]
    assert entry["status"] == "ingested"
    assert [m.split(":")[0] for m in entry["missing"]] == ["primary/pilatus", "primary/eiger"]
    assert str(target.path("data/lost-pilatus.h5")) in entry["missing"][0]
    assert entries["computed_resource.jsonl"]["missing"] == [
        "primary/img: resource spec 'newton' names no file (root '/')"
    ]
    with target.client() as root:
        run = root[uid]
        assert run.metadata["_ingest"]["missing"] == entry["missing"]
        assert passes_validator(run)
        assert set(run["primary"].base) == {"internal"}
        data = run["primary"].read()
        numpy.testing.assert_array_equal(data["I0"].values, event_values(name, "primary", "I0"))
    status = target.invoke("status")
    assert "runs ingested without the keys whose external files are missing: 2" in status.output, status.output


def test_refused_runs_leave_nothing_and_are_not_retried_unless_asked(target, tmp_path):
    """A column name Tiled will not store (`2theta`) is the content's fault: refused, nothing left,
    and `retry` leaves it alone until asked with --refused."""
    from event_model import compose_run

    bundle = compose_run(uid="0f1e2d3c-0000-4000-8000-00000000beef")
    desc = bundle.compose_descriptor(
        name="primary", data_keys={k: {"dtype": "number", "shape": [], "source": "PV"} for k in ("2theta", "I0")}
    )
    docs = [("start", bundle.start_doc), ("descriptor", desc.descriptor_doc)]
    docs += [("event", desc.compose_event(data={"2theta": 1.0 * n, "I0": 2.0}, timestamps={"2theta": 1.0, "I0": 1.0}))
             for n in range(3)]  # fmt: skip
    docs.append(("stop", bundle.compose_stop()))
    path = target.folder / "two_theta.jsonl"
    path.write_text("".join(json.dumps([n, d]) + "\n" for n, d in docs))
    result = target.invoke("ingest-dir", path)
    assert result.exit_code == 1, result.output
    assert f"{path}:1: start {bundle.start_doc['uid']} : Tiled will not store the run as it is:" in result.output
    assert "2theta" in result.output
    with target.client() as root:
        assert bundle.start_doc["uid"] not in root
    again = target.invoke("retry")
    assert "1 refused files not tried again" in again.output and again.exit_code == 0, again.output
    asked = target.invoke("retry", "--refused")
    assert asked.exit_code == 1 and "Tiled will not store" in asked.output, asked.output
