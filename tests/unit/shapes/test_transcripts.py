"""The `transcripts` shape: whole dialogues split at their shared history; every input row ends as a
canonical row or in quarantine."""

from __future__ import annotations

from alignloop.shapes.transcripts import split_pair
from tests.unit.shapes.conftest import fixture_rows, write_table


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
