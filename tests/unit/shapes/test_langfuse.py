"""The `langfuse` shape: scores on traces and observations become thumbs; every other score has a reason or waits."""

from __future__ import annotations

import json

import pyarrow as pa

from alignloop.shapes.langfuse import langfuse_completion, langfuse_prompt
from tests.unit.shapes.conftest import fixture_rows, write_table

SCORES = pa.schema([
    ("id", pa.string()), ("timestamp", pa.string()), ("trace_id", pa.string()), ("observation_id", pa.string()),
    ("name", pa.string()), ("value", pa.float64()), ("string_value", pa.string()), ("data_type", pa.string()),
    ("author_user_id", pa.string()),
])


def _warehouse(tmp_path):
    wh = tmp_path / "wh.duckdb"
    write_table(wh, "traces", fixture_rows("langfuse_traces.jsonl"))
    write_table(wh, "observations", fixture_rows("langfuse_observations.jsonl"))
    return write_table(wh, "scores", fixture_rows("langfuse_scores.jsonl"), SCORES)


def test_input_and_output_shapes_langfuse_writes_are_read():
    assert langfuse_prompt('{"messages": [{"role": "user", "content": "Hi"}]}') == '[{"role": "user", "content": "Hi"}]'
    assert langfuse_prompt("Hi") == '[{"role": "user", "content": "Hi"}]'
    assert langfuse_prompt('{"foo": 1}') is None
    assert langfuse_completion('{"role": "assistant", "content": "Yes"}') == "Yes"
    assert langfuse_completion('{"choices": [{"message": {"content": "Yes"}}]}') == "Yes"
    assert langfuse_completion("plain") == "plain"


def test_scores_become_thumbs_on_what_they_rate(tmp_path, shape_run):
    result = shape_run.ingest(_warehouse(tmp_path), "langfuse")
    thumbs = shape_run.rows("SELECT prompt[-1].content, completion, label, model_version FROM unpaired ORDER BY ts")
    assert thumbs == [
        ("Hi!", "Hello, how can I help?", True, "v3"),                      # NUMERIC 1 on a trace
        ("What is 2 + 2?", "5", False, "v3"),                               # BOOLEAN 0
        ("Summarise this, briefly.", "Short summary.", True, "tiny-7b"),    # CATEGORICAL 👍 on an observation
        # s5 (latency 2.5) is past the up threshold: with no score_names set, every score is feedback.
        ("Summarise this.", "A summary.", True, "v3"),
    ]
    assert shape_run.reasons() == {
        "score value 0.5 is between shape_options.down_threshold (0) and up_threshold (1)": 1,
        "trace input is not text or a messages list": 1,
    }
    assert result.unpaired_added == 4 and result.pending == 1
    assert result.rows_read == {"traces": 4, "observations": 1, "scores": 7}


def test_score_names_select_the_feedback_scores_and_a_late_trace_releases_a_pending_score(tmp_path, shape_run):
    wh = _warehouse(tmp_path)
    first = shape_run.ingest(wh, "langfuse", shape_options={"score_names": ["user-feedback", "thumbs"]})
    assert "score name 'latency' is not one of shape_options.score_names" in shape_run.reasons()
    assert first.unpaired_added == 3 and first.pending == 1
    write_table(wh, "traces", [*fixture_rows("langfuse_traces.jsonl"), {
        "id": "t9", "timestamp": "2026-10-01 10:07:50.000000", "name": "chat", "user_id": "erin", "version": "v4",
        "input": "Late?", "output": "Here now."}])
    second = shape_run.ingest(wh, "langfuse", shape_options={"score_names": ["user-feedback", "thumbs"]})
    assert (second.unpaired_added, second.pending) == (1, 0)
    assert shape_run.rows("SELECT completion FROM unpaired WHERE model_version = 'v4'") == [("Here now.",)]


def test_a_trace_never_scored_waits_then_is_quarantined_and_a_late_score_brings_it_back(tmp_path, shape_run):
    from datetime import datetime, timedelta

    from alignloop.connectors.duckdb_file import DuckDBConnector, DuckDBSettings
    from alignloop.config import IngestSettings, SourceSettings

    wh = _warehouse(tmp_path)
    traces = [*fixture_rows("langfuse_traces.jsonl"), {
        "id": "t5", "timestamp": "2026-10-01 10:09:00.000000", "name": "chat", "user_id": "erin", "version": "v3",
        "input": "Unrated?", "output": "Nobody scored me."}]
    write_table(wh, "traces", traces)
    src = SourceSettings(name="src", connector="duckdb", options={"path": str(wh)}, shape="langfuse")
    settings = IngestSettings(max_bad_share=1.0, pending_timeout=timedelta(days=3))
    now = datetime(2026, 11, 1)

    def ingest(at):
        return shape_run.store.ingest(src, DuckDBConnector(DuckDBSettings(path=wh)), settings=settings, now=at)

    first = ingest(now)
    assert first.pending == 2  # s7 waits for its trace t9, and t5 for a score
    assert shape_run.rows("SELECT input, key FROM pending ORDER BY input") == [("scores", "s7"), ("traces", "t5")]
    assert ingest(now + timedelta(days=2)).quarantined == 0  # nothing new, not past the timeout: still waiting
    late = ingest(now + timedelta(days=4))
    assert (late.pending, late.quarantined) == (0, 2)
    assert {r: n for r, n in shape_run.reasons().items() if "after" in r} == {
        "no trace or observation after 3 days": 1, "trace without score after 3 days": 1}
    [(payload,)] = shape_run.rows("SELECT payload FROM quarantine WHERE reason = 'trace without score after 3 days'")
    assert json.loads(payload)["output"] == "Nobody scored me."
    # A score for t5 arrives after all: it is used, and t5 leaves quarantine.
    write_table(wh, "scores", [*fixture_rows("langfuse_scores.jsonl"), {
        "id": "s8", "timestamp": "2026-11-05 09:00:00", "trace_id": "t5", "observation_id": None,
        "name": "user-feedback", "value": 0.0, "string_value": None, "data_type": "NUMERIC", "author_user_id": None}],
        SCORES)
    again = ingest(now + timedelta(days=5))
    assert again.unpaired_added == 1
    assert shape_run.rows("SELECT completion, label FROM unpaired WHERE completion = 'Nobody scored me.'") == [
        ("Nobody scored me.", False)]
    assert "trace without score after 3 days" not in shape_run.reasons()
