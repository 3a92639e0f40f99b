"""(Re)generate fixtures/: real bluesky runs in every file format, and hand-derived bad/odd variants.

    .venv/bin/python scripts/make_fixtures.py

Deletes and rewrites fixtures/{good,bad,incomplete,moved,unsafe}, fixtures/expected.json and
fixtures/README.md, then fixtures/facility/ (hand-written facility forms, `fixture_facility.py`, which
also runs on its own without the `fixtures` extra). Needs the `fixtures` extra (bluesky, ophyd, ophyd-async[sim], suitcase-jsonl).
Runs come from the RunEngine with uuid4 and time.time pinned (fixture_io.pinned); every external
path in the documents is rewritten to be relative to the run file's folder (or, in moved/, to an
absolute root of another site). Nothing here is imported by the ingester.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import event_model
from fixture_expect import FOREIGN_ROOT, render_readme, summarize_runs
from fixture_facility import make_facility, merge_into_expected
from fixture_io import (
    Docs,
    fresh_uids,
    pinned,
    relocate,
    write_gzip_jsonl,
    write_json_array,
    write_lines,
    write_name_doc_lines,
    write_pretty_pairs,
    write_suitcase_jsonl,
)
from fixture_runs import Lab, compose_legacy_ad_hdf5
from fixture_variants import (
    BAD_VARIANTS,
    Variant,
    missing_stream_resource,
    point_resources,
    point_stream_resources,
    truncated_tail,
    unknown_datum,
    unknown_resource,
    unknown_stream_resource,
    without_stop,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ROOT_MAP_ARG = f"--root-map {FOREIGN_ROOT}=fixtures/moved"


class Fixtures:
    """Collects what was written and what reading it should give (expected.json, README.md)."""

    def __init__(self) -> None:
        self.entries: list[dict] = []
        self.docs: dict[str, Docs] = {}

    def ok(self, rel: str, docs: Docs, what: str, how: str, *, root_map=None, **extra) -> None:
        path = FIXTURES / rel
        runs = summarize_runs(docs, path.parent, FIXTURES, root_map)
        entry = {
            "file": rel,
            "what": what,
            "how": how,
            "status": "ok",
            "runs": len(runs),
            "line": None,
            "reason": None,
            **extra,
        }
        if len(runs) == 1:
            entry.update(uid=runs[0]["uid"], streams=runs[0]["streams"], external_keys=runs[0]["external_keys"])
        else:
            entry["run_details"] = runs
        self.entries.append(entry)
        self.docs[rel] = docs

    def derived(self, rel: str, variant: Variant, what: str, how: str, status: str = "invalid") -> None:
        write_lines(FIXTURES / rel, variant.lines, final_newline=variant.final_newline)
        entry = {
            "file": rel,
            "what": what,
            "how": how,
            "status": status,
            "runs": variant.runs,
            "line": variant.line,
            "reason": variant.reason,
        }
        if variant.note:
            entry["note"] = variant.note
        self.entries.append(entry)

    def write_index(self) -> None:
        expected = {}
        for entry in self.entries:
            expected[entry["file"]] = {k: v for k, v in entry.items() if k not in ("file", "what", "how")}
        (FIXTURES / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
        (FIXTURES / "README.md").write_text(render_readme(self.entries))


def produce(seed: str, make, data_dir: Path) -> Docs:
    """Run one producer with pinned uids/clock and make its external paths relative (`data/...`)."""
    with pinned(seed):
        docs = make()
    return relocate(docs, data_dir, stream_prefix="data/", resource_root="")


def as_event_page(docs: Docs) -> Docs:
    """Replace a run's events by one event_page per descriptor (event_model.pack_event_page)."""
    events = [doc for name, doc in docs if name == "event"]
    first = next(i for i, (name, _) in enumerate(docs) if name == "event")
    rest = [pair for pair in docs if pair[0] != "event"]
    page = event_model.pack_event_page(*events)
    return rest[:first] + [("event_page", page)] + rest[first:]


def make_good(lab: Lab, fx: Fixtures) -> dict[str, Docs]:
    good = FIXTURES / "good"
    data = good / "data"
    data.mkdir(parents=True)
    runs = {
        "scan": produce("good/scan", lab.scan_with_baseline, data),
        "count_page": produce("good/count_page", lambda: lab.count_scalars(5), data),
        "npy": produce("good/npy", lambda: lab.count_npy_seq(data), data),
        "legacy_ad": produce(
            "good/legacy_ad",
            lambda: compose_legacy_ad_hdf5(data / "legacy-ad-frames.h5", "data/legacy-ad-frames.h5"),
            data,
        ),
        "blob": produce("good/blob", lambda: lab.count_blob(data, "blob-count", 3), data),
        "fly": produce("good/fly", lambda: lab.fly_blob(data, "blob-fly", 4), data),
        "reserved": produce("good/reserved", lab.count_reserved_keys, data),
        "array20": produce("good/array20", lab.count_array20, data),
        "nan": produce("good/nan", lab.count_nan_inf, data),
        "blob_name_doc": produce("good/blob_name_doc", lambda: lab.count_blob(data, "blob-namedoc", 2), data),
        "scan_json": produce("good/scan_json", lambda: lab.scan_with_baseline(3), data),
        "scan_pretty": produce("good/scan_pretty", lambda: lab.scan_with_baseline(3), data),
        "scan_gz": produce("good/scan_gz", lambda: lab.scan_with_baseline(3), data),
        "two_a": produce("good/two_a", lambda: lab.count_scalars(3), data),
        "two_b": produce("good/two_b", lambda: lab.scan_with_baseline(3), data),
    }
    runs["count_page"] = as_event_page(runs["count_page"])
    sc, ra, sim = "suitcase.jsonl Serializer", "RunEngine + ophyd.sim", "RunEngine + ophyd_async.sim"
    table = [  # file, run, writer, what it is, how it was made
        (
            "scan_baseline.jsonl",
            "scan",
            write_suitcase_jsonl,
            "`scan` det vs motor, 5 points; `baseline` stream (SupplementalData) of motor1",
            f"{ra}, {sc}",
        ),
        (
            "count_event_page.jsonl",
            "count_page",
            write_suitcase_jsonl,
            "`count` of det and noisy_det; its 5 events packed into one event_page",
            f"{ra}, event_model.pack_event_page, {sc}",
        ),
        (
            "count_npy_seq.jsonl",
            "npy",
            write_suitcase_jsonl,
            'legacy Resource (spec NPY_SEQ, root "") + a Datum per event; 6x8 images in data/*.npy',
            f"{ra} SynSignalWithRegistry, {sc}",
        ),
        (
            "legacy_ad_hdf5_frames.jsonl",
            "legacy_ad",
            write_suitcase_jsonl,
            "legacy Resource AD_HDF5_SWMR_STREAM, `frame` datums; data/legacy-ad-frames.h5 (4, 8, 10) uint16",
            f"event_model.compose_run + h5py, {sc}",
        ),
        (
            "blob_count.jsonl",
            "blob",
            write_suitcase_jsonl,
            "ophyd-async SimBlobDetector + SimPointDetector `count` of 3; StreamResource/StreamDatum, "
            "data/blob-count.h5",
            f"{sim}, {sc}",
        ),
        (
            "blob_fly.jsonl",
            "fly",
            write_suitcase_jsonl,
            "ophyd-async SimBlobDetector fly scan of 4 frames: no event documents, one StreamDatum a key",
            f"{sim} (prepare, kickoff, complete, collect), {sc}",
        ),
        (
            "count_reserved_keys.jsonl",
            "reserved",
            write_suitcase_jsonl,
            "data keys named `time` and `seq_num`",
            f"{ra} SynSignal, {sc}",
        ),
        (
            "count_array20.jsonl",
            "array20",
            write_suitcase_jsonl,
            "internal array data key `spectrum` of shape [20] (> 16 elements)",
            f"{ra} SynSignal, {sc}",
        ),
        (
            "nan_infinity.jsonl",
            "nan",
            write_suitcase_jsonl,
            "event values NaN, Infinity, -Infinity as Python's json writes them",
            f"{ra} SynSignal, {sc}",
        ),
        (
            "blob_count.name_doc.jsonl",
            "blob_name_doc",
            write_name_doc_lines,
            '`{"name", "doc"}` lines (TiledWriter backup form); ophyd-async count of 2, data/blob-namedoc.h5',
            f"{sim}, bluesky JSONLinesWriter",
        ),
        (
            "scan_baseline.json",
            "scan_json",
            write_json_array,
            'JSON array of `{"name", "doc"}`, one element a line; scan of 3 with baseline',
            f"{ra}, bluesky JSONWriter",
        ),
        (
            "scan_baseline.pretty.json",
            "scan_pretty",
            write_pretty_pairs,
            "pretty-printed (indent=2) JSON array of `[name, doc]`; scan of 3 with baseline",
            f"{ra}, json.dumps(indent=2)",
        ),
        (
            "scan_baseline.jsonl.gz",
            "scan_gz",
            write_gzip_jsonl,
            "gzip-compressed suitcase-jsonl; scan of 3 with baseline",
            f"{ra}, {sc}, gzip (mtime 0)",
        ),
    ]
    for name, key, writer, what, how in table:
        writer(good / name, runs[key])
        fx.ok(f"good/{name}", runs[key], what, how)
    write_lines(good / "two_runs.jsonl", _suitcase_lines(runs["two_a"]) + _suitcase_lines(runs["two_b"]))
    fx.ok(
        "good/two_runs.jsonl",
        runs["two_a"] + runs["two_b"],
        "two complete runs one after the other (count of 3, then scan of 3 with baseline)",
        f"{ra}, two {sc} outputs concatenated",
    )
    return runs


def _suitcase_lines(docs: Docs) -> list[str]:
    tmp = FIXTURES / ".tmp.jsonl"
    write_suitcase_jsonl(tmp, docs)
    lines = tmp.read_text().splitlines()
    tmp.unlink()
    return lines


def make_bad(runs: dict[str, Docs], fx: Fixtures) -> None:
    (FIXTURES / "bad").mkdir()
    base = "derived from good/two_runs.jsonl's first run (count of 3), fresh uids"
    for name, (derive, what) in BAD_VARIANTS.items():
        docs = fresh_uids(runs["two_a"], f"bad/{name}")
        other = runs["scan"] if name == "stop_for_another_run.jsonl" else fresh_uids(runs["two_b"], f"bad/{name}/b")
        variant = derive(docs, other)
        if name == "stop_for_another_run.jsonl":
            variant.note = "stop.run_start is the uid of the run in good/scan_baseline.jsonl"
        fx.derived(f"bad/{name}", variant, what, base)
    npy = fresh_uids(runs["npy"], "bad/npy")
    blob = fresh_uids(runs["blob"], "bad/blob")
    fx.derived(
        "bad/unknown_resource.jsonl",
        unknown_resource(npy),
        "datum whose resource is unknown",
        "derived from good/count_npy_seq.jsonl, fresh uids",
    )
    fx.derived(
        "bad/external_key_without_resource.jsonl",
        unknown_datum(npy, "img"),
        "legacy external key `img` without its resource and datums",
        "derived from good/count_npy_seq.jsonl, fresh uids",
    )
    fx.derived(
        "bad/unknown_stream_resource.jsonl",
        unknown_stream_resource(blob),
        "stream_datum whose stream_resource is unknown",
        "derived from good/blob_count.jsonl, fresh uids",
    )
    fx.derived(
        "bad/external_key_without_stream_resource.jsonl",
        missing_stream_resource(blob, "bdet"),
        "STREAM: key `bdet` without its stream_resource and stream_datums",
        "derived from good/blob_count.jsonl, fresh uids",
    )


def make_incomplete(runs: dict[str, Docs], fx: Fixtures) -> None:
    (FIXTURES / "incomplete").mkdir()
    fx.derived(
        "incomplete/no_stop.jsonl",
        without_stop(fresh_uids(runs["scan"], "incomplete/no_stop")),
        "a scan with baseline whose stop document never came",
        "good/scan_baseline.jsonl without its last line",
        status="incomplete",
    )
    fx.derived(
        "incomplete/truncated_last_line.jsonl",
        truncated_tail(fresh_uids(runs["two_a"], "incomplete/trunc")),
        "last line cut mid-document, no trailing newline",
        "good count of 3, stop line halved",
        status="incomplete",
    )


def make_unsafe(runs: dict[str, Docs], fx: Fixtures) -> None:
    unsafe = FIXTURES / "unsafe"
    (unsafe / "data").mkdir(parents=True)
    (unsafe / "data" / "hostname-link.h5").symlink_to("/etc/hostname")
    blob = fresh_uids(runs["blob"], "unsafe/climb")
    climb_legacy = fresh_uids(runs["legacy_ad"], "unsafe/climb_legacy")
    linked = fresh_uids(runs["legacy_ad"], "unsafe/symlink")
    missing = fresh_uids(runs["fly"], "unsafe/missing")
    cases = [  # file, documents, what it is, how it was made, what the writer must do
        (
            "climbs_out.jsonl",
            point_stream_resources(blob, "../../outside.h5"),
            "StreamResource uri `../../outside.h5` climbs out of the fixtures",
            "good/blob_count.jsonl, uri rewritten",
            "refuse: escapes data root",
        ),
        (
            "climbs_out_legacy.jsonl",
            point_resources(climb_legacy, "", "../../outside.h5"),
            "legacy Resource, resource_path `../../outside.h5`",
            "good/legacy_ad_hdf5_frames.jsonl, resource_path rewritten",
            "refuse: escapes data root",
        ),
        (
            "symlink_outside.jsonl",
            point_resources(linked, "", "data/hostname-link.h5"),
            "legacy Resource whose file data/hostname-link.h5 is a symlink to /etc/hostname",
            "good/legacy_ad_hdf5_frames.jsonl, resource_path rewritten; symlink committed",
            "refuse: symlink",
        ),
        (
            "missing_file.jsonl",
            point_stream_resources(missing, "data/missing-blob.h5"),
            "StreamResource uri data/missing-blob.h5, which does not exist",
            "good/blob_fly.jsonl, uri rewritten",
            "refuse: not found",
        ),
    ]
    for name, docs, what, how, writer in cases:
        write_suitcase_jsonl(unsafe / name, docs)
        fx.ok(f"unsafe/{name}", docs, what, how, writer=writer)


def make_moved(runs: dict[str, Docs], fx: Fixtures) -> None:
    moved = FIXTURES / "moved"
    data = moved / "data"
    data.mkdir(parents=True)
    good_data = FIXTURES / "good" / "data"
    shutil.copyfile(good_data / "blob-namedoc.h5", data / "blob-moved.h5")
    shutil.copyfile(good_data / "legacy-ad-frames.h5", data / "legacy-ad-frames.h5")
    npy = fresh_uids(runs["npy"], "moved/npy")
    stem = Path(next(d["resource_path"] for n, d in npy if n == "resource")).name
    for file in good_data.glob(f"{stem}_*.npy"):
        shutil.copyfile(file, data / file.name)
    blob = fresh_uids(runs["blob_name_doc"], "moved/blob")
    legacy_ad = fresh_uids(runs["legacy_ad"], "moved/ad")
    cases = [  # file, documents, what it is, how it was made
        (
            "blob_count_moved.jsonl",
            point_stream_resources(blob, f"file://localhost{FOREIGN_ROOT}/data/blob-moved.h5"),
            "ophyd-async count of 2; uri file://localhost/nsls2/.../data/blob-moved.h5",
            "good/blob_count.name_doc.jsonl, uri rewritten",
        ),
        (
            "npy_seq_moved.jsonl",
            point_resources(npy, FOREIGN_ROOT, f"data/{stem}"),
            f"legacy NPY_SEQ, root {FOREIGN_ROOT}",
            "good/count_npy_seq.jsonl, root rewritten",
        ),
        (
            "legacy_ad_moved.jsonl",
            point_resources(legacy_ad, FOREIGN_ROOT, "data/legacy-ad-frames.h5"),
            f"legacy AD_HDF5_SWMR_STREAM, root {FOREIGN_ROOT}",
            "good/legacy_ad_hdf5_frames.jsonl, root rewritten",
        ),
    ]
    for name, docs, what, how in cases:
        write_suitcase_jsonl(moved / name, docs)
        fx.ok(f"moved/{name}", docs, what, how, root_map={FOREIGN_ROOT: moved}, writer=f"needs {ROOT_MAP_ARG}")


def clean() -> None:
    for sub in ("good", "bad", "incomplete", "moved", "unsafe"):
        shutil.rmtree(FIXTURES / sub, ignore_errors=True)
    FIXTURES.mkdir(exist_ok=True)


def main() -> int:
    clean()
    fx = Fixtures()
    with pinned("lab"):  # the devices' configuration timestamps are taken when they are built
        lab = Lab()
    runs = make_good(lab, fx)
    make_bad(runs, fx)
    make_incomplete(runs, fx)
    make_unsafe(runs, fx)
    make_moved(runs, fx)
    fx.write_index()
    merge_into_expected(make_facility())
    here = str(FIXTURES.parent)
    leaks = [p for p in FIXTURES.rglob("*.json*") if here.encode() in p.read_bytes() or b"/tmp/" in p.read_bytes()]
    if leaks:
        print(f"absolute paths of this machine in: {leaks}", file=sys.stderr)
        return 1
    print(f"wrote {len(fx.entries)} fixture files under {FIXTURES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
