"""Canonical rows say whether their time was observed in the source or is the load time standing in
for a missing one (`ts_observed`), and a snapshot reads it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from alignloop.connectors.duckdb_file import DuckDBConnector, DuckDBSettings
from alignloop import stages
from alignloop.config import SourceSettings, settings_from_dict
from alignloop.ingest.store import FeedbackStore


def test_events_rows_carry_their_observed_feedback_time(tmp_path, small_warehouse):
    src = SourceSettings(name="prod", connector="duckdb", options={"path": str(small_warehouse)})
    with FeedbackStore(tmp_path / "store.duckdb") as store:
        store.ingest(src, DuckDBConnector(DuckDBSettings(path=small_warehouse)))
        unpaired, pairs = store.read_snapshot(store.snapshot())
    assert unpaired.column("ts_observed").to_pylist() == [True, True]
    assert pairs.column("ts_observed").to_pylist() == [True]


def _ingest_file(tmp_path, rows: list[dict], shape: str):
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / f"{shape}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    settings = settings_from_dict({"target": "t", "base_model": {"tiny": True}, "sources": [
        {"name": "f", "connector": "files", "options": {"path": str(path)}, "shape": shape}]}, base_dir=tmp_path)
    stages.ingest(settings)
    with FeedbackStore(settings.store_path) as store:
        return store.read_snapshot(store.snapshot())


def test_a_file_without_a_time_column_gives_rows_marked_unobserved(tmp_path):
    before = datetime.now(UTC).replace(tzinfo=None)
    unpaired, _ = _ingest_file(tmp_path, [{"prompt": "Hi", "completion": "Hello!", "label": "up"},
                                          {"prompt": "Hi", "completion": "Go away.", "label": "down"}], "unpaired")
    rows = unpaired.to_pylist()
    assert [r["ts_observed"] for r in rows] == [False, False]
    assert all(r["ts"] >= before for r in rows)  # the load time stands in


def test_a_file_with_times_gives_rows_marked_observed_and_a_pair_of_two_needs_both(tmp_path):
    rows = [{"prompt": "Hi", "completion": "Hello!", "label": "up", "ts": "2026-10-01T10:00:00Z"},
            {"prompt": "Hi", "completion": "Go away.", "label": "down", "ts": "2026-10-01T10:05:00Z"}]
    unpaired, pairs = _ingest_file(tmp_path, rows, "unpaired")
    assert [(r["ts"], r["ts_observed"]) for r in unpaired.to_pylist()] == [
        (datetime(2026, 10, 1, 10, 0), True), (datetime(2026, 10, 1, 10, 5), True)]
    assert pairs.num_rows == 0


def test_pairs_of_two_rated_rows_carry_whether_their_times_were_observed(tmp_path):
    rows = [{"prompt": "Hi", "completion": "Hello!", "score": 5}, {"prompt": "Hi", "completion": "Go away.", "score": 1}]
    _, pairs = _ingest_file(tmp_path / "untimed", rows, "ratings")
    assert [(r["chosen"], r["ts_observed"]) for r in pairs.to_pylist()] == [("Hello!", False)]
    timed = [{**r, "ts": f"2026-10-01T10:0{i}:00Z"} for i, r in enumerate(rows)]
    unpaired, pairs = _ingest_file(tmp_path / "timed", timed, "ratings")
    assert [(r["chosen"], r["ts"], r["ts_observed"]) for r in pairs.to_pylist()] == [
        ("Hello!", datetime(2026, 10, 1, 10, 1), True)]
    assert unpaired.column("ts_observed").to_pylist() == [True, True]
