"""The `unpaired` and `transcripts` shapes: every input row ends as a canonical row or in quarantine."""

from __future__ import annotations

import pytest

from alignloop.shapes.transcripts import split_pair
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


def test_transcript_split_takes_the_shared_history_as_prompt():
    h, a = "\n\nHuman: ", "\n\nAssistant: "
    prompt, chosen, rejected, problem = split_pair(h + "Hi" + a + "Hello!" + h + "Fact?" + a + "Honey keeps.",
                                                   h + "Hi" + a + "Hello!" + h + "Fact?" + a + "No idea.")
    assert problem is None
    assert prompt == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                      {"role": "user", "content": "Fact?"}]
    assert (chosen, rejected) == ("Honey keeps.", "No idea.")


def test_transcripts_load_and_every_unsplittable_row_is_quarantined_with_its_reason(tmp_path, shape_run):
    wh = write_table(tmp_path / "wh.duckdb", "transcripts", fixture_rows("transcripts.jsonl"))
    result = shape_run.ingest(wh, "transcripts")
    pairs = shape_run.rows("SELECT len(prompt), prompt[-1].content, chosen, rejected FROM pairs ORDER BY 1")
    assert pairs == [
        (1, "What is the capital of France?", "Paris.", "Lyon, I think."),
        (3, "Tell me a fact.", "Honey never spoils.", "I don't know any."),
    ]
    assert shape_run.reasons() == {
        "chosen and rejected do not share the history up to the last assistant turn": 1,
        "rejected's final answer is empty": 1,
        "chosen is not a dialogue of 'Human:' and 'Assistant:' turns": 1,
        "chosen does not end with an Assistant turn": 1,
        "chosen and rejected final answers are identical": 1,
    }
    assert (result.rows_read, result.pairs_added, result.quarantined) == ({"rows": 7}, 2, 5)
    # The quarantined rows keep both dialogues as the source wrote them.
    payload = shape_run.rows("SELECT payload->>'rejected' FROM quarantine WHERE reason LIKE 'rejected%'")
    assert payload == [("\n\nHuman: Why?\n\nAssistant:  ",)]
