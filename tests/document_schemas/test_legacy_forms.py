"""The list of legacy forms accepted (`schemas.legacy_forms`) is the one the README gives, and each
form's fixture validates."""

from __future__ import annotations

import pytest

from ingester.read.validate import validate_file
from schemas import LEGACY_BY_NAME, LEGACY_FORMS
from support.corpus import FIXTURES, REPO


def formats_accepted() -> str:
    text = (REPO / "README.md").read_text()
    return text[text.index("## Formats accepted") : text.index("## Performance")]


def test_every_legacy_form_is_in_the_readme_and_says_what_is_done():
    section = formats_accepted()
    for form in LEGACY_FORMS:
        assert f"| `{form.name}` |" in section, form.name
        assert form.action in {"dropped", "translated", "kept"} and form.seen and form.done
    assert len(LEGACY_BY_NAME) == len(LEGACY_FORMS)


@pytest.mark.parametrize(
    "name", ["resource_legacy_id.jsonl", "stream_key_with_datums.jsonl", "filled_with_datum_ids.jsonl"]
)
def test_facility_files_with_legacy_forms_validate(name):
    report = validate_file(FIXTURES / "facility" / name)
    assert report.status == "ok", [str(p) for run in report.runs for p in run.problems]
