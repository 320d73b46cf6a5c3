"""The loading guarantees hold for the prepared shapes too, not only `events`: salted user ids, PII
scrubbing, landing checks (future, control characters, size), duplicates, the per-user cap, rows
fixed upstream, and pending rows that wait too long."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import pytest

from alignloop.connectors.duckdb_file import DuckDBConnector, DuckDBSettings
from alignloop.config import IngestSettings, SourceSettings
from tests.unit.shapes.conftest import fixture_rows, write_table

PREF = {"rows": {"table": "prefs", "ts": "ts"}}


def _pref(i: str, minute: int, user: str = "u1", prompt: str = "Capital of France?", chosen: str = "Paris.",
          rejected: str = "Lyon.") -> dict:
    return {"id": i, "ts": datetime(2026, 10, 1, 12, minute), "user_id": user, "prompt": prompt, "chosen": chosen,
            "rejected": rejected}


def _salted(salt: str, user: str) -> str:
    return hashlib.sha256((salt + user).encode()).hexdigest()


@pytest.mark.parametrize("shape, tables, users", [
    ("preference", {"prefs": [_pref("p1", 0, "alice"), _pref("p2", 1, "bob", "2 + 2?", "4", "5")]}, {"alice", "bob"}),
    ("langfuse", None, {"alice", "bob", "carol", "dan", "reviewer1"}),
    ("unpaired", {"unpaired": [{"prompt": "Hi", "completion": "Hello!", "label": "up", "user_id": "u1"},
                               {"prompt": "Hi", "completion": "Go away.", "label": "down", "user_id": "u2"}]},
     {"u1", "u2"}),
])
def test_every_shape_stores_user_ids_hashed_with_the_installation_salt(tmp_path, shape_run, shape, tables, users):
    wh = tmp_path / "wh.duckdb"
    if tables is None:
        write_table(wh, "traces", fixture_rows("langfuse_traces.jsonl"))
        write_table(wh, "observations", fixture_rows("langfuse_observations.jsonl"))
        tables = {"scores": fixture_rows("langfuse_scores.jsonl")}
    for name, rows in tables.items():
        write_table(wh, name, rows)
    shape_run.ingest(wh, shape, mapping={"rows": {"table": "prefs"}} if shape == "preference" else {})
    stored = {u for (u,) in shape_run.rows("SELECT user_id FROM unpaired UNION SELECT user_id FROM pairs")} - {None}
    salt = shape_run.store.user_salt
    assert stored and stored <= {_salted(salt, u) for u in users}
    # The plain hash the shapes stored before (reversible by trying names) is nowhere.
    assert not stored & {hashlib.sha256(u.encode()).hexdigest() for u in users}


def test_pii_in_a_preference_row_is_scrubbed_before_it_is_stored(tmp_path, shape_run):
    wh = write_table(tmp_path / "wh.duckdb", "prefs", [
        _pref("p1", 0, prompt="Mail me at jane.doe@example.com", chosen="Call +1 415 555 0132.", rejected="No.")])
    shape_run.ingest(wh, "preference", mapping=PREF)
    assert shape_run.rows("SELECT prompt[1].content, chosen FROM pairs") == [("Mail me at [EMAIL]", "Call [PHONE].")]
    landed = shape_run.rows("SELECT prompt || chosen FROM raw_preference")[0][0]
    assert "example.com" not in landed and "555" not in landed


def test_a_future_row_is_quarantined_and_does_not_move_a_prepared_shapes_cursor(tmp_path, shape_run):
    wh = write_table(tmp_path / "wh.duckdb", "prefs", [
        _pref("p1", 0), {**_pref("p2", 0, prompt="Later?"), "ts": datetime(2099, 1, 1)}])
    result = shape_run.ingest(wh, "preference", mapping=PREF)
    assert shape_run.reasons() == {"ts is in the future (later than now + ingest.future_skew)": 1}
    assert result.pairs_added == 1
    assert shape_run.store.cursor_position("src", "rows").value == "2026-10-01T12:00:00"


def test_control_characters_and_oversized_text_are_quarantined_at_landing(tmp_path, shape_run):
    wh = write_table(tmp_path / "wh.duckdb", "unpaired", [
        {"id": "a", "prompt": "Hi", "completion": "Hel\x07lo", "label": "up"},
        {"id": "b", "prompt": "Hi", "completion": "x" * 50, "label": "up"},
        {"id": "c", "prompt": "Hi", "completion": "Hello!", "label": "down"},
    ])
    result = shape_run.ingest(wh, "unpaired", settings=IngestSettings(max_bad_share=1.0, max_text_chars=40))
    assert shape_run.reasons() == {"completion contains control characters": 1,
                                   "completion is longer than ingest.max_text_chars (40)": 1}
    assert (result.unpaired_added, result.quarantined) == (1, 2)


def test_duplicates_and_the_per_user_cap_apply_to_a_prepared_shape(tmp_path, shape_run):
    wh = write_table(tmp_path / "wh.duckdb", "prefs", [
        _pref("p1", 0), _pref("p2", 1, chosen="PARIS. "),           # the same judgement twice (case, space)
        _pref("p3", 2, prompt="2 + 2?", chosen="4", rejected="5"),  # u1's third row
        _pref("p4", 3, "u2", prompt="2 + 2?", chosen="4", rejected="5"),
    ])
    result = shape_run.ingest(wh, "preference", mapping=PREF,
                              settings=IngestSettings(max_bad_share=1.0, max_rows_per_user=1))
    reasons = shape_run.reasons()
    assert reasons["duplicate of an earlier row (same user, prompt, answers and label after case/whitespace "
                   "normalisation)"] == 1
    assert reasons["user over ingest.max_rows_per_user (1 rows)"] == 1
    assert sorted(shape_run.rows("SELECT chosen FROM pairs")) == [("4",), ("Paris.",)]
    assert (result.pairs_added, result.duplicates) == (2, 1)


def test_a_row_fixed_upstream_replaces_its_pair(tmp_path, shape_run):
    wh = write_table(tmp_path / "wh.duckdb", "prefs", [_pref("p1", 0, chosen="Paris")])
    shape_run.ingest(wh, "preference", mapping=PREF)
    write_table(wh, "prefs", [_pref("p1", 5, chosen="Paris.")])
    result = shape_run.ingest(wh, "preference", mapping=PREF)
    assert shape_run.rows("SELECT chosen FROM pairs") == [("Paris.",)]
    assert result.replaced == 1 and dict(shape_run.store.conflict_counts()) == {"replaced by a newer version": 1}


def test_a_langfuse_score_whose_trace_never_comes_times_out_with_its_reason(tmp_path, shape_run):
    wh = tmp_path / "wh.duckdb"
    write_table(wh, "traces", fixture_rows("langfuse_traces.jsonl"))
    write_table(wh, "observations", fixture_rows("langfuse_observations.jsonl"))
    write_table(wh, "scores", fixture_rows("langfuse_scores.jsonl"))
    source = SourceSettings(name="src", connector="duckdb", options={"path": str(wh)}, shape="langfuse")
    conn = DuckDBConnector(DuckDBSettings(path=wh))
    settings = IngestSettings(max_bad_share=1.0)
    now = datetime(2026, 10, 2)
    first = shape_run.store.ingest(source, conn, settings=settings, now=now)
    later = shape_run.store.ingest(source, conn, settings=settings, now=now + timedelta(days=8))
    assert (first.pending, later.pending) == (1, 0)
    assert shape_run.reasons()["no trace or observation after 7 days"] == 1


def test_a_langfuse_trace_fixed_upstream_sends_its_scores_back_to_be_judged(tmp_path, shape_run):
    wh = tmp_path / "wh.duckdb"
    traces = fixture_rows("langfuse_traces.jsonl")
    write_table(wh, "traces", traces)
    write_table(wh, "observations", fixture_rows("langfuse_observations.jsonl"))
    write_table(wh, "scores", fixture_rows("langfuse_scores.jsonl"))
    mapping = {"traces": {"timestamp": "timestamp"}}
    shape_run.ingest(wh, "langfuse", mapping=mapping)
    query = "SELECT completion FROM unpaired WHERE prompt[-1].content = 'What is 2 + 2?'"
    assert shape_run.rows(query) == [("5",)]
    before = shape_run.store.snapshot()
    rows_before = [t.to_pylist() for t in shape_run.store.read_snapshot(before)]
    write_table(wh, "traces", [t if t["id"] != "t2" else {**t, "output": "4", "timestamp": "2026-10-01 11:00:00"}
                               for t in traces])
    result = shape_run.ingest(wh, "langfuse", mapping=mapping)
    assert result.replaced == 1 and shape_run.rows(query) == [("4",)]
    # The snapshot taken before the fix still reads the answer it held.
    assert [t.to_pylist() for t in shape_run.store.read_snapshot(before)] == rows_before
    assert shape_run.store.snapshot().snapshot_id != before.snapshot_id


def test_a_tree_reply_fixed_upstream_leaves_the_earlier_snapshot_as_it_was(tmp_path, shape_run):
    from tests.unit.shapes.conftest import fixture_rows

    rows = fixture_rows("message_trees_messages.jsonl")
    mapping = {"rows": {"created_date": "created_date"}}
    wh = write_table(tmp_path / "wh.duckdb", "message_trees", rows)
    shape_run.ingest(wh, "message_trees", mapping=mapping)
    before = shape_run.store.snapshot()
    rows_before = [t.to_pylist() for t in shape_run.store.read_snapshot(before)]
    assert any(r["chosen"] == "Whiskers." for r in rows_before[1])
    # a1, the best-ranked reply, is fixed upstream: every pair it took part in is judged again.
    fixed = [{**r, "text": "Mittens.", "created_date": "2023-02-03T10:00:00.000000+00:00"} if r["message_id"] == "a1"
             else r for r in rows]
    write_table(wh, "message_trees", fixed)
    assert shape_run.ingest(wh, "message_trees", mapping=mapping).replaced == 1
    after = shape_run.store.snapshot()
    chosen_now = {r["chosen"] for r in shape_run.store.read_snapshot(after)[1].to_pylist()}
    assert "Mittens." in chosen_now and "Whiskers." not in chosen_now
    assert [t.to_pylist() for t in shape_run.store.read_snapshot(before)] == rows_before
    assert shape_run.store.snapshot_identity(before.high_water_batch)[0] == before.snapshot_id != after.snapshot_id
    assert shape_run.rows("SELECT count(*) FROM pairs WHERE chosen = 'Whiskers.'") == [(0,)]
