"""The `events` shape: generations and feedback events joined by request id; thumbs, comparisons,
feedback waiting for its generation, and every unusable event quarantined with its reason."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from tests.unit.shapes.conftest import fixture_rows, write_table

FEEDBACK_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("request_id", pa.string()), ("ts", pa.timestamp("us")), ("user_id", pa.string()),
    ("kind", pa.string()), ("value", pa.string()), ("other_request_id", pa.string()),
])


def _timed(name: str) -> list[dict]:
    return [{**r, "ts": datetime.fromisoformat(r["ts"])} for r in fixture_rows(name)]


def _warehouse(tmp_path):
    wh = write_table(tmp_path / "wh.duckdb", "generations", _timed("events_generations.jsonl"))
    return write_table(wh, "feedback_events", _timed("events_feedback.jsonl"), FEEDBACK_SCHEMA)


def test_thumbs_and_comparisons_join_their_generations_and_bad_events_are_quarantined(tmp_path, shape_run):
    result = shape_run.ingest(_warehouse(tmp_path), "events")
    assert shape_run.rows("SELECT prompt[1].content, completion, label FROM unpaired ORDER BY 1, 2") == [
        ("Name a prime.", "7.", False), ("What is 2 + 2?", "4.", True)]
    assert shape_run.rows("SELECT prompt[1].content, chosen, rejected FROM pairs") == [("What is 2 + 2?", "4.", "5.")]
    assert shape_run.reasons() == {
        "compared generations answer different messages": 1,
        "kind must be 'thumb' or 'comparison'": 1,
        "messages must end with the user's turn": 1,
        "response is blank (whitespace only)": 1,   # generation g5, refused at landing
        "thumb value must be 'up' or 'down'": 1,
    }
    # Feedback on a generation that never landed (g5 was refused, g9 is not in the source) waits for it.
    assert shape_run.rows("SELECT key FROM pending ORDER BY key") == [("e7",), ("e8",)]
    assert result.rows_read == {"generations": 5, "feedback": 9}
    assert (result.unpaired_added, result.pairs_added, result.quarantined, result.pending) == (2, 1, 5, 2)


def test_a_rerun_of_the_same_events_adds_nothing(tmp_path, shape_run):
    wh = _warehouse(tmp_path)
    shape_run.ingest(wh, "events")
    again = shape_run.ingest(wh, "events")
    assert (again.unpaired_added, again.pairs_added, again.quarantined) == (0, 0, 0)
    assert shape_run.rows("SELECT count(*) FROM unpaired") == [(2,)]
    assert shape_run.rows("SELECT count(*) FROM pairs") == [(1,)]
