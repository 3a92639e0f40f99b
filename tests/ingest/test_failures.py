"""Issue 14, class 3: errors that come from the run's content are `refused`, never `failed`; `failed` is
only for Tiled, the network or the disk (the end-to-end `failed` case, a server stopped mid-batch, is
tests/ingest/test_ingest_dir_failures.py::test_tiled_stopped_mid_folder_fails_the_rest_and_retry_completes_them; a column name Tiled
refuses is tests/ingest/test_facility_forms.py::test_refused_runs_leave_nothing_and_are_not_retried_unless_asked)."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pyarrow
import pytest
import sqlalchemy.exc
from event_model import compose_run

from ingester.config import PathRules
from ingester.ingest.failures import is_target_failure
from ingester.ingest.guards import RunClaimedElsewhere
from ingester.ingest.pipeline import RunIngester
from ingester.problems import Problem, WriteFailed
from ingester.status import Outcome
from ingester.target.targets import open_embedded


def _status(code: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://127.0.0.1/api/v1/metadata/")
    return httpx.HTTPStatusError(f"{code}", request=request, response=httpx.Response(code, request=request))


def _caused_by(error: BaseException) -> WriteFailed:
    """What the writer raises: a WriteFailed whose cause is the original error."""
    try:
        try:
            raise error
        except BaseException as cause:
            raise WriteFailed(Problem("run.jsonl", None, "writing failed")) from cause
    except WriteFailed as wrapped:
        return wrapped


CASES = {  # what the writer met -> is it the target's failure?
    "column names equal ignoring case (Tiled's ValueError)": (ValueError("Column names must be unique"), False),
    "a value pyarrow cannot convert": (pyarrow.ArrowTypeError("Could not convert 'a' with type str"), False),
    "a request Tiled rejects (HTTP 422)": (_status(422), False),
    "Tiled's internal error (HTTP 500)": (_status(500), True),
    "Tiled unavailable (HTTP 503)": (_status(503), True),
    "an API key refused (HTTP 401)": (_status(401), True),
    "the server is gone": (httpx.ConnectError("connection refused"), True),
    "a read timeout": (httpx.ReadTimeout("timed out"), True),
    "the disk is full": (OSError(28, "No space left on device"), True),
    "the catalog's database is locked": (
        sqlalchemy.exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked")),
        True,
    ),
    "another worker kept the run": (RunClaimedElsewhere("run x stayed claimed"), True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_kind_of_error_is_classified(case):
    error, target_failed = CASES[case]
    assert is_target_failure(error) is target_failed
    assert is_target_failure(_caused_by(error)) is target_failed


def test_a_value_tiled_cannot_store_refuses_the_run_and_leaves_nothing(tmp_path):
    """A column whose values are numbers, then text: pyarrow refuses the table half-way through the
    write; the run is refused (not failed), with its file and line, and its partial run removed."""
    bundle = compose_run()
    desc = bundle.compose_descriptor(name="primary", data_keys={"x": {"dtype": "number", "shape": [], "source": "PV"}})
    docs = [("start", bundle.start_doc), ("descriptor", desc.descriptor_doc)]
    for value in (1.0, "overrange"):
        docs.append(("event", desc.compose_event(data={"x": value}, timestamps={"x": 1.0}, validate=False)))
    docs.append(("stop", bundle.compose_stop()))
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps([n, d]) + "\n" for n, d in docs))
    with open_embedded(tmp_path / "catalog") as target:
        [outcome] = RunIngester(target.writer_root, PathRules()).ingest(path).runs
        assert outcome.status == Outcome.REFUSED, outcome
        assert outcome.line == 1 and outcome.problems[0].path == str(path)
        assert outcome.reason.startswith("Tiled will not store the run as it is:"), outcome.reason
        assert "overrange" in outcome.reason and "the partial run was removed" in outcome.reason
        assert bundle.start_doc["uid"] not in target.root
