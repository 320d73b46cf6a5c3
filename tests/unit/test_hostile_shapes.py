"""Property: whatever text the rows of any log shape hold (tests/hostile.py), ingest keeps it: every text
ends up in the store unchanged (in the landed rows and the canonical rows made of them, or in quarantine
with its row), and none of it is executed (the warehouse's canary table and the store's tables survive).
Counts go to RELIABILITY.md."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings

from alignloop.config import IngestSettings
from alignloop.shapes import SHAPES
from tests.hostile import EXAMPLES, hostile_text
from tests.unit.shapes.conftest import ShapeRun, write_table

pytestmark = [pytest.mark.slow, pytest.mark.reliability]
T0 = datetime(2026, 10, 1, 12, 0)
CANARY = ("canary", [{"alive": 1}])


def _chat(text: str) -> str:
    return json.dumps([{"role": "user", "content": text}])


def _events(a: str, b: str, c: str) -> dict[str, list[dict]]:
    gen = [{"request_id": r, "ts": T0, "user_id": "u1", "model_version": "v1", "messages": _chat(a), "response": t}
           for r, t in (("r1", b), ("r2", c))]
    fb = [{"event_id": "f1", "request_id": "r1", "ts": T0 + timedelta(minutes=1), "user_id": "u2", "kind": "thumb",
           "value": "up", "other_request_id": None},
          {"event_id": "f2", "request_id": "r1", "ts": T0 + timedelta(minutes=2), "user_id": "u3",
           "kind": "comparison", "value": "a", "other_request_id": "r2"}]
    return {"generations": gen, "feedback_events": fb}


def _message_trees(a: str, b: str, c: str) -> dict[str, list[dict]]:
    rows = [("m0", None, "prompter", a, None), ("m1", "m0", "assistant", b, 0), ("m2", "m0", "assistant", c, 1)]
    return {"message_trees": [{"message_id": m, "parent_id": p, "role": role, "text": text, "rank": rank,
                               "created_date": T0, "deleted": False, "review_result": True, "user_id": "u1",
                               "message_tree_id": "m0"} for m, p, role, text, rank in rows]}


def _langfuse(a: str, b: str, c: str) -> dict[str, list[dict]]:
    return {"traces": [{"id": "t1", "timestamp": T0, "user_id": "u1", "version": "v1", "input": a, "output": b}],
            "observations": [{"id": "o1", "trace_id": "t1", "start_time": T0, "provided_model_name": "m",
                              "input": a, "output": c}],
            "scores": [{"id": "s1", "timestamp": T0, "trace_id": "t1", "observation_id": None, "name": "user-feedback",
                        "value": 1.0, "string_value": None, "data_type": "BOOLEAN", "author_user_id": "u2"},
                       {"id": "s2", "timestamp": T0, "trace_id": "t1", "observation_id": "o1", "name": "user-feedback",
                        "value": 0.0, "string_value": None, "data_type": "BOOLEAN", "author_user_id": "u3"}]}


def _one_table(table: str, make: Callable[[str, str, str], list[dict]]):
    return lambda a, b, c: {table: [{"ts": T0 + timedelta(minutes=i), "user_id": f"u{i}", **row}
                                    for i, row in enumerate(make(a, b, c))]}


TABLES: dict[str, Callable[[str, str, str], dict[str, list[dict]]]] = {
    "events": _events,
    "preference": _one_table("preference", lambda a, b, c: [{"prompt": a, "chosen": b, "rejected": c}]),
    "unpaired": _one_table("unpaired", lambda a, b, c: [{"prompt": a, "completion": b, "label": "up"},
                                                        {"prompt": a, "completion": c, "label": "down"}]),
    "transcripts": _one_table("transcripts", lambda a, b, c: [{
        "chosen": f"\n\nHuman: {a}\n\nAssistant: {b}", "rejected": f"\n\nHuman: {a}\n\nAssistant: {c}"}]),
    "ratings": _one_table("ratings", lambda a, b, c: [{"prompt": a, "completion": b, "score": 5.0},
                                                      {"prompt": a, "completion": c, "score": 1.0}]),
    "corrections": _one_table("corrections", lambda a, b, c: [{"prompt": a, "original": b, "corrected": c}]),
    "comparisons": _one_table("comparisons", lambda a, b, c: [{"prompt": a, "answer_a": b, "answer_b": c, "winner": "a"},
                                                              {"prompt": a, "answer_a": c, "answer_b": b, "winner": "tie"}]),
    "message_trees": _message_trees,
    "langfuse": _langfuse,
}


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a stored value, JSON decoded where it is JSON (messages, quarantined rows)."""
    if isinstance(value, str):
        yield value
        try:
            decoded = json.loads(value)
        except ValueError:
            return
        if not isinstance(decoded, str):
            yield from _strings(decoded)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def _stored(run: ShapeRun) -> list[str]:
    tables = [t for (t,) in run.rows("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")
              if t in ("pairs", "unpaired", "ranks", "ties", "quarantine", "pending") or t.startswith("raw_")]
    return [s for t in tables for row in run.rows(f'SELECT * FROM "{t}"') for s in _strings(list(row))]


def test_every_shape_has_a_hostile_row_builder():
    assert set(TABLES) == set(SHAPES)


@pytest.mark.parametrize("shape", sorted(TABLES))
def test_hostile_text_in_every_shape_is_stored_unchanged_or_quarantined_and_never_executed(
        shape, tmp_path_factory, record_property):
    tried: list[int] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(hostile_text(), hostile_text(), hostile_text())
    def check(a: str, b: str, c: str) -> None:
        folder = tmp_path_factory.mktemp(f"hostile-{shape}")
        warehouse = folder / "warehouse.duckdb"
        for table, rows in [*TABLES[shape](a, b, c).items(), CANARY]:
            write_table(warehouse, table, rows)
        run = ShapeRun(folder)
        try:
            before = set(run.rows("SELECT table_name FROM information_schema.tables"))
            run.ingest(warehouse, shape, settings=IngestSettings(max_bad_share=1.0, scrub_pii=False))
            stored = _stored(run)
            missing = [t for t in (a, b, c) if t.strip() and not any(t.strip() in s for s in stored)]
            assert not missing, f"{shape}: text neither stored nor quarantined: {[m[:80] for m in missing]}"
            assert before <= set(run.rows("SELECT table_name FROM information_schema.tables"))
        finally:
            run.store.close()
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            assert con.execute("SELECT count(*) FROM canary").fetchone() == (1,)
        finally:
            con.close()
        tried.append(3)

    check()
    record_property("reliability", json.dumps({"hostile": f"shape {shape}", "inputs": sum(tried),
                                               "examples": len(tried), "changed": 0, "injections_executed": 0}))
