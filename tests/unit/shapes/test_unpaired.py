"""The `unpaired` shape: thumbs in any usual spelling; every input row ends as a canonical row or in quarantine."""

from __future__ import annotations

import pytest

from alignloop.shapes.unpaired import parse_label
from tests.unit.shapes.conftest import fixture_rows, write_table


@pytest.mark.parametrize(("value", "label"), [
    (True, True), (False, False), (1, True), (0, False), (-1, False), ("up", True), ("DOWN", False),
    ("👍", True), ("👎️", False), ("+1", True), ("-1", False), ("thumbs_up", True), ("Thumbs_Down", False),
])
def test_thumbs_spellings_parse(value, label):
    assert parse_label(value) == (label, None)


@pytest.mark.parametrize("value", ["meh", 3, 0.5, "", "upvote?"])
def test_other_labels_are_problems_naming_the_value(value):
    label, problem = parse_label(value)
    assert label is None and repr(value)[:10] in problem


def test_unpaired_rows_load_with_labels_and_bad_ones_are_quarantined(tmp_path, shape_run):
    wh = write_table(tmp_path / "wh.duckdb", "unpaired", fixture_rows("unpaired.jsonl"))
    result = shape_run.ingest(wh, "unpaired")
    got = shape_run.rows("SELECT prompt[1].content, completion, label FROM unpaired ORDER BY 1, 2")
    assert got == [
        ("2+2?", "4", True), ("2+2?", "5", False), ("Hi", "Go away.", False), ("Hi", "Hello!", True),
        ("Sky?", "Blue.", True), ("Sky?", "Green.", False), ("Tea?", "Never.", False), ("Tea?", "Yes please.", True),
    ]
    assert shape_run.reasons() == {
        "label 'meh' is not a thumbs value (use true/false, 1/0, up/down, 👍/👎, +1/-1)": 1,
        "label is missing": 1,
        "completion is empty": 1,
    }
    assert result.rows_read == {"rows": 11} and result.unpaired_added + result.quarantined == 11
