"""ingester.external.resolve on real files under tmp_path: data roots, root map, server paths, refusals."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest
from event_model import compose_run

from ingester.config import PathRules
from ingester.external.resolve import resolve_external_paths
from ingester.problems import IngestError, Problem
from ingester.read.normalize import normalize_run
from ingester.runs import Document, NormalizedRun


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not read by resolve")
    return path


def _run(tmp_path: Path, pairs: list[tuple[str, dict]]) -> NormalizedRun:
    run_file = tmp_path / "runs" / "run.jsonl"
    run_file.parent.mkdir(exist_ok=True)
    documents = [Document(name, doc, line) for line, (name, doc) in enumerate(pairs, start=1)]
    return normalize_run(documents, run_file)


def _stream_resource_run(
    tmp_path: Path, uri: str, mimetype: str = "application/x-hdf5", parameters: dict | None = None, frames: int = 2
) -> NormalizedRun:
    """A current StreamResource (line 3) with one StreamDatum per frame."""
    bundle = compose_run()
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={
            "img": {"source": "s", "dtype": "array", "shape": [4, 4], "external": "STREAM:", "dtype_numpy": "<u2"}
        },
    )
    sres = bundle.compose_stream_resource(
        mimetype=mimetype,
        uri=uri,
        data_key="img",
        parameters=parameters if parameters is not None else {"dataset": "/data"},
    )
    pairs = [
        ("start", bundle.start_doc),
        ("descriptor", desc.descriptor_doc),
        ("stream_resource", sres.stream_resource_doc),
    ]
    for i in range(frames):
        pairs.append(
            (
                "stream_datum",
                sres.compose_stream_datum(indices={"start": i, "stop": i + 1}, descriptor=desc.descriptor_doc),
            )
        )
    pairs.append(("stop", bundle.compose_stop()))
    return _run(tmp_path, pairs)


def _resource_run(
    tmp_path: Path, root: str, resource_path: str, spec: str = "AD_HDF5", frames: int = 2
) -> tuple[NormalizedRun, str]:
    """A legacy Resource (line 3) with one Datum and one Event per frame; returns the resource uid."""
    bundle = compose_run()
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={"img": {"source": "s", "dtype": "array", "shape": [4, 4], "external": "FILESTORE:"}},
    )
    resource = bundle.compose_resource(spec=spec, root=root, resource_path=resource_path, resource_kwargs={})
    pairs = [("start", bundle.start_doc), ("descriptor", desc.descriptor_doc), ("resource", resource.resource_doc)]
    for i in range(frames):
        datum = resource.compose_datum(datum_kwargs={"point_number": i})
        pairs.append(("datum", datum))
        pairs.append(
            (
                "event",
                desc.compose_event(
                    data={"img": datum["datum_id"]}, timestamps={"img": 0.0}, filled={"img": False}, seq_num=i + 1
                ),
            )
        )
    pairs.append(("stop", bundle.compose_stop()))
    return _run(tmp_path, pairs), resource.resource_doc["uid"]


def _only(run: NormalizedRun):
    (source,) = run.external.values()
    return source


def _refusal(run: NormalizedRun, rules: PathRules) -> Problem:
    with pytest.raises(IngestError) as caught:
        resolve_external_paths(run, rules)
    return caught.value.problem


def test_no_data_root_means_the_run_file_directory(tmp_path: Path) -> None:
    det = _touch(tmp_path / "runs" / "det.h5")
    run = _stream_resource_run(tmp_path, "det.h5")
    resolved = resolve_external_paths(run, PathRules())
    source = _only(resolved)
    assert source.local_uri == source.server_uri == f"file://localhost{det}"
    assert source.doc["uri"] == "det.h5", "the document keeps the location as written"
    assert _only(run).local_uri is None, "the input run is left alone"


def test_one_data_root_replaces_the_run_file_directory(tmp_path: Path) -> None:
    _touch(tmp_path / "runs" / "det.h5")
    root = tmp_path / "root1"
    run = _stream_resource_run(tmp_path, "file:sub/det.h5")
    problem = _refusal(run, PathRules(data_roots=(root,)))
    assert problem.line == 3 and problem.name == "stream_resource"
    assert problem.uid == _only(run).doc["uid"]
    assert problem.reason == f"external file does not exist: {root}/sub/det.h5"
    det = _touch(root / "sub" / "det.h5")
    assert _only(resolve_external_paths(run, PathRules(data_roots=(root,)))).local_uri == (f"file://localhost{det}")


def test_first_data_root_holding_the_files_wins(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    in_second = _touch(second / "det.h5")
    run = _stream_resource_run(tmp_path, "det.h5")
    rules = PathRules(data_roots=(first, second))
    assert _only(resolve_external_paths(run, rules)).local_uri == f"file://localhost{in_second}"
    in_first = _touch(first / "det.h5")
    assert _only(resolve_external_paths(run, rules)).local_uri == f"file://localhost{in_first}"


def test_root_map_rewrites_whole_components(tmp_path: Path) -> None:
    det = _touch(tmp_path / "moved" / "det.h5")
    run, resource_uid = _resource_run(tmp_path, root="/nsls2/data/a", resource_path="det.h5")
    rules = PathRules(data_roots=(tmp_path / "runs",), root_map=(("/nsls2/data/a", str(det.parent)),))
    assert _only(resolve_external_paths(run, rules)).local_uri == f"file://localhost{det}"

    # /nsls2/data/a must not match /nsls2/data/ab
    run, resource_uid = _resource_run(tmp_path, root="/nsls2/data/ab", resource_path="det.h5")
    problem = _refusal(run, rules)
    assert (problem.line, problem.name, problem.uid) == (3, "resource", resource_uid)
    assert problem.reason == "external path escapes the data roots: /nsls2/data/ab/det.h5"


def test_server_paths_rewrite_only_the_server_uri(tmp_path: Path) -> None:
    root = tmp_path / "data"
    det = _touch(root / "scan" / "det.h5")
    run = _stream_resource_run(tmp_path, f"file://localhost{det}")
    rules = PathRules(data_roots=(root,), server_paths=((str(root), "/srv/beamline"),))
    source = _only(resolve_external_paths(run, rules))
    assert source.local_uri == f"file://localhost{det}"
    assert source.server_uri == "file://localhost/srv/beamline/scan/det.h5"
    # Component-wise: a sibling directory whose name starts the same is not rewritten.
    other = _touch(tmp_path / "data2" / "det.h5")
    run = _stream_resource_run(tmp_path, str(other))
    rules = PathRules(data_roots=(root, other.parent), server_paths=((str(root), "/srv/beamline"),))
    assert _only(resolve_external_paths(run, rules)).server_uri == f"file://localhost{other}"


def test_dot_dot_cannot_climb_out(tmp_path: Path) -> None:
    root = tmp_path / "data"
    outside = _touch(tmp_path / "secret.h5")
    run, resource_uid = _resource_run(tmp_path, root="", resource_path="sub/../../secret.h5")
    problem = _refusal(run, PathRules(data_roots=(root,)))
    assert (problem.line, problem.name, problem.uid) == (3, "resource", resource_uid)
    assert problem.reason == f"external path escapes the data roots: {outside}"


def test_symlink_pointing_out_of_the_roots_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "data"
    outside = _touch(tmp_path / "elsewhere" / "det.h5")
    root.mkdir()
    os.symlink(outside, root / "det.h5")
    run = _stream_resource_run(tmp_path, "det.h5")
    problem = _refusal(run, PathRules(data_roots=(root,)))
    assert problem.line == 3 and problem.name == "stream_resource"
    assert problem.reason == f"external path escapes the data roots: {root}/det.h5 (a symlink to {outside})"


def test_missing_absolute_file(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    run, resource_uid = _resource_run(tmp_path, root=str(root), resource_path="/gone.h5")
    problem = _refusal(run, PathRules(data_roots=(root,)))
    assert (problem.line, problem.name, problem.uid) == (3, "resource", resource_uid)
    assert problem.reason == f"external file does not exist: {root}/gone.h5"


def test_tiff_sequence_with_one_file_missing(tmp_path: Path) -> None:
    root = tmp_path / "data"
    files = [_touch(root / "tiffs" / f"img_{i:03d}.tif") for i in range(3)]
    run = _stream_resource_run(
        tmp_path,
        "file:tiffs/",
        mimetype="multipart/related;type=image/tiff",
        parameters={"template": "img_%03d.tif"},
        frames=3,
    )
    source = _only(resolve_external_paths(run, PathRules(data_roots=(root,))))
    assert source.local_uri == f"file://localhost{root}/tiffs/"
    files[1].unlink()
    problem = _refusal(run, PathRules(data_roots=(root,)))
    assert problem.line == 3 and problem.name == "stream_resource"
    assert problem.reason == f"external file does not exist: {files[1]}"


def test_npy_sequence_with_one_file_missing(tmp_path: Path) -> None:
    files = [_touch(tmp_path / "runs" / "npy" / f"scan_{i}.npy") for i in range(3)]
    run, resource_uid = _resource_run(tmp_path, root="", resource_path="npy/scan", spec="NPY_SEQ", frames=3)
    source = _only(resolve_external_paths(run, PathRules()))
    assert source.local_uri == f"file://localhost{tmp_path}/runs/npy/scan"
    files[2].unlink()
    problem = _refusal(run, PathRules())
    assert (problem.line, problem.name, problem.uid) == (3, "resource", resource_uid)
    assert problem.reason == f"external file does not exist: {files[2]}"


def test_other_hosts_and_schemes_are_refused(tmp_path: Path) -> None:
    run = _stream_resource_run(tmp_path, "file://otherhost/data/det.h5")
    assert "names another host" in _refusal(run, PathRules()).reason
    run = _stream_resource_run(tmp_path, "s3://bucket/det.h5")
    assert "unsupported URI scheme 's3'" in _refusal(run, PathRules()).reason


def test_sources_of_one_data_key_are_checked_in_turn(tmp_path: Path) -> None:
    """Two StreamResources of one data key (one node, as TiledWriter groups them): the second is named."""
    root = tmp_path / "data"
    _touch(root / "a.h5")
    bundle = compose_run()
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={"img": {"source": "s", "dtype": "array", "shape": [4, 4], "external": "STREAM:"}},
    )
    pairs = [("start", bundle.start_doc), ("descriptor", desc.descriptor_doc)]
    for i, name in enumerate(("a.h5", "b.h5")):
        sres = bundle.compose_stream_resource(
            mimetype="application/x-hdf5", uri=name, data_key="img", parameters={"dataset": "/data"}
        )
        pairs.append(("stream_resource", sres.stream_resource_doc))
        pairs.append(
            (
                "stream_datum",
                sres.compose_stream_datum(indices={"start": i, "stop": i + 1}, descriptor=desc.descriptor_doc),
            )
        )
    pairs.append(("stop", bundle.compose_stop()))
    run = _run(tmp_path, pairs)
    problem = _refusal(run, PathRules(data_roots=(root,)))
    assert (problem.line, problem.name) == (5, "stream_resource")
    assert problem.reason == f"external file does not exist: {root}/b.h5"
    _touch(root / "b.h5")
    resolved = resolve_external_paths(run, PathRules(data_roots=(root,)))
    assert [s.local_uri for s in resolved.external.values()] == [
        f"file://localhost{root}/a.h5",
        f"file://localhost{root}/b.h5",
    ]


def test_an_unreadable_file_of_an_npy_sequence_is_refused_like_a_missing_one(tmp_path: Path) -> None:
    for i in (0, 2):
        _touch(tmp_path / "runs" / "npy" / f"scan_{i}.npy")
    (tmp_path / "runs" / "npy" / "scan_1.npy").mkdir()  # there, but not a file that can be read
    run, resource_uid = _resource_run(tmp_path, root="", resource_path="npy/scan", spec="NPY_SEQ", frames=3)
    problem = _refusal(run, PathRules())
    assert problem.uid == resource_uid and problem.line == 3
    assert problem.reason == f"external file is not a regular file: {tmp_path}/runs/npy/scan_1.npy"


@pytest.mark.parametrize("name", ["a#b.h5", "a?b.h5", "x #1?.h5"])
def test_a_file_name_tiled_cannot_read_back_is_refused_saying_why(tmp_path: Path, name: str) -> None:
    _touch(tmp_path / "runs" / name)
    for uri in (f"file://localhost{tmp_path}/runs/{name}", f"file://localhost{tmp_path}/runs/{quote(name)}"):
        problem = _refusal(_stream_resource_run(tmp_path, uri), PathRules())  # as written, or percent-encoded
        assert "which Tiled cannot read back from a file URI" in problem.reason
        assert problem.reason.endswith(f"{tmp_path}/runs/{name}")


def test_a_percent_encoded_uri_names_the_decoded_file(tmp_path: Path) -> None:
    det = _touch(tmp_path / "runs" / "det 1 (100%).h5")
    source = _only(
        resolve_external_paths(_stream_resource_run(tmp_path, f"file://localhost{quote(str(det))}"), PathRules())
    )
    assert source.local_uri == f"file://localhost{det}"  # the form tiled reads back (it does not decode)
