"""The `preference` shape: mapped columns, text or messages prompts, content keys, load-time rule, quarantine."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from alignloop.config import IngestSettings
from alignloop.errors import ConfigError
from tests.unit.shapes.conftest import ShapeRun, fixture_rows, write_table

MAPPING = {"rows": {"table": "prefs", "prompt": "question", "chosen": "good", "rejected": "bad"}}
U = "user"


def test_mapped_rows_become_pairs_and_every_broken_row_is_quarantined_with_its_reason(tmp_path, shape_run):
    wh = write_table(tmp_path / "wh.duckdb", "prefs", fixture_rows("preference.jsonl"))
    result = shape_run.ingest(wh, "preference", mapping=MAPPING)
    pairs = shape_run.rows("SELECT prompt, chosen, rejected, ts FROM pairs ORDER BY ts")
    assert pairs == [
        # +02:00 normalised to UTC
        ([{"role": U, "content": "Name a prime number."}], "7 is prime.", "9 is prime.", datetime(2026, 10, 1, 11, 0)),
        ([{"role": U, "content": "What is 2 + 2?"}], "2 + 2 = 4.", "5.", datetime(2026, 10, 1, 12, 0)),
    ]
    assert shape_run.reasons() == {
        "chosen is empty": 1,
        "chosen and rejected are identical": 1,
        "ts 'yesterday' is not an ISO-8601 timestamp": 1,
        "id is missing": 1,
    }
    assert result.rows_read == {"rows": 6}
    assert (result.pairs_added, result.quarantined, result.unpaired_added) == (2, 4, 0)
    # The judgement's author: annotator hashed (no user column here), so the per-user cap can see it.
    users = {u for (u,) in shape_run.rows("SELECT user_id FROM pairs")}
    assert len(users) == 2 and None not in users and "ann1" not in users


def test_messages_prompts_keep_turns_and_rows_without_id_get_a_stable_content_key(tmp_path, shape_run):
    wh = write_table(tmp_path / "wh.duckdb", "preference", fixture_rows("preference_messages.jsonl"))
    before = datetime.utcnow()
    result = shape_run.ingest(wh, "preference")
    after = datetime.utcnow()
    # Five rows read, one is an exact duplicate of another: same content key, landed once.
    assert result.rows_read == {"rows": 5} and result.raw_added == {"rows": 4}
    prompts = shape_run.rows("SELECT prompt FROM pairs ORDER BY len(prompt)")
    assert prompts == [
        ([{"role": "user", "content": "Tell a joke."}],),
        ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
          {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Say bye."}],),
    ]
    assert shape_run.reasons() == {
        "prompt must end with the user's turn": 1,
        "prompt turn 0 has no role system, user or assistant (got 'narrator')": 1,
    }
    # No time column: the load time, and the landing row says it was not observed.
    ts_rows = shape_run.rows("SELECT ts, ts_observed FROM raw_preference")
    assert all(before <= ts <= after and observed is False for ts, observed in ts_rows)
    # The same content in another store gets the same event ids.
    ids = sorted(i for (i,) in shape_run.rows("SELECT event_id FROM pairs"))
    other = ShapeRun(tmp_path / "other")
    try:
        other.ingest(wh, "preference")
        assert sorted(i for (i,) in other.rows("SELECT event_id FROM pairs")) == ids
    finally:
        other.store.close()


def test_rerun_adds_nothing_and_a_mapped_ts_reads_incrementally(tmp_path, shape_run):
    rows = [{**r, "ts": datetime.fromisoformat(r["ts"]).replace(tzinfo=None)} for r in fixture_rows("preference.jsonl")[:2]]
    wh = write_table(tmp_path / "wh.duckdb", "prefs", rows)
    mapping = {"rows": {**MAPPING["rows"], "ts": "ts"}}
    no_lookback = IngestSettings(max_bad_share=1.0, lookback=timedelta(0))
    first = shape_run.ingest(wh, "preference", mapping=mapping, settings=no_lookback)
    again = shape_run.ingest(wh, "preference", mapping=mapping, settings=no_lookback)
    # Windows start at the cursor (inclusive): only the newest row is read again, and it is not added.
    assert first.pairs_added == 2 and again.rows_read == {"rows": 1} and again.raw_added == {"rows": 0}
    assert again.pairs_added == 0
    # With the default look-back (a day) both rows are read again, and neither is added twice.
    late = shape_run.ingest(wh, "preference", mapping=mapping)
    assert late.rows_read == {"rows": 2} and late.raw_added == {"rows": 0} and late.duplicates == 2
    # Without the ts mapping there is no cursor: the whole table is read, nothing is added twice.
    full = shape_run.ingest(wh, "preference", mapping=MAPPING)
    assert full.rows_read == {"rows": 2} and full.raw_added == {"rows": 0} and full.pairs_added == 0


def test_missing_required_column_names_the_mapping(tmp_path, shape_run):
    wh = write_table(tmp_path / "wh.duckdb", "prefs", fixture_rows("preference.jsonl"))
    from alignloop.errors import TerminalError

    with pytest.raises(TerminalError, match=r"no column 'prompt'.*mapping\.rows"):
        shape_run.ingest(wh, "preference", mapping={"rows": {"table": "prefs", "chosen": "good", "rejected": "bad"}})


def test_unknown_shape_option_is_a_config_error_naming_the_field():
    from alignloop.config import SourceSettings

    with pytest.raises(ConfigError, match=r"sources\[s\]\.shape_options\.margin: not a setting of the 'preference'"):
        SourceSettings(name="s", shape="preference", shape_options={"margin": 1})


def test_a_row_without_a_time_never_moves_the_cursor(tmp_path, shape_run):
    rows = [{**r, "ts": datetime.fromisoformat(r["ts"]).replace(tzinfo=None)} for r in fixture_rows("preference.jsonl")[:2]]
    rows.append({**rows[0], "id": "p-null-ts", "ts": None, "question": "Late?"})
    wh = write_table(tmp_path / "wh.duckdb", "prefs", rows)
    mapping = {"rows": {**MAPPING["rows"], "ts": "ts"}}
    result = shape_run.ingest(wh, "preference", mapping=mapping)
    assert shape_run.reasons() == {"ts is missing": 1} and result.pairs_added == 2
    # The NULL time landed as the load time (unobserved); the cursor stays at the newest observed time.
    assert datetime.fromisoformat(shape_run.store.cursor_position("src", "rows").value) == datetime(2026, 10, 1, 13, 0)


def test_prompt_spellings_and_a_prompt_that_is_neither_text_nor_messages():
    from alignloop.shapes.base import as_conversation, conversation_problem

    assert as_conversation({"messages": [{"role": "human", "content": "Hi"}]}) == '[{"role": "user", "content": "Hi"}]'
    assert as_conversation('[{"from": "human", "value": "Hi"}]') == '[{"role": "user", "content": "Hi"}]'
    assert as_conversation("[not json") == '[{"role": "user", "content": "[not json"}]'
    assert as_conversation(42) is None and as_conversation({"text": "Hi"}) is None
    assert conversation_problem(None, raw=42) == "prompt is neither text nor a messages list"
    assert conversation_problem(None) == "prompt is missing"
