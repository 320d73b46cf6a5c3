"""The `corrections` shape: the edited answer is preferred over the original it replaced."""

from __future__ import annotations

from tests.unit.shapes.conftest import fixture_rows, write_table


def test_corrected_answer_is_preferred_over_the_original(tmp_path, shape_run):
    wh = write_table(tmp_path / "wh.duckdb", "corrections", fixture_rows("corrections.jsonl"))
    result = shape_run.ingest(wh, "corrections", mapping={"rows": {"user_id": "editor"}})
    assert shape_run.rows("SELECT chosen, rejected FROM pairs ORDER BY chosen") == [("Canberra.", "Sydney."),
                                                                                    ("Cat.", "Chat.")]
    assert shape_run.reasons() == {"corrected and original are identical": 1, "corrected is empty": 1}
    assert (result.pairs_added, result.quarantined) == (2, 2)
    assert shape_run.rows("SELECT count(DISTINCT user_id) FROM pairs") == [(2,)]
