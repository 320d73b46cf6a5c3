"""Shared fixtures: small real things (DuckDB files, a tiny offline model, an MLflow sqlite store)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from alignloop.offline import set_offline_defaults

# Nothing may reach a model hub; set before transformers is imported anywhere.
set_offline_defaults()

T0 = datetime(2026, 10, 1, 12, 0, 0)


@pytest.fixture(scope="session", autouse=True)
def _shared_builds(tmp_path_factory):
    """One session folder for what many tests would build again: the tiny model, a migrated Prefect database."""
    from tests import shared_builds

    shared_builds.set_root(tmp_path_factory.mktemp("shared-builds"))


@pytest.fixture(scope="session")
def tiny_dir(_shared_builds) -> Path:
    """The tiny offline model's folder, built once for the session."""
    from tests.shared_builds import tiny_model

    return tiny_model()


def chat(text: str) -> str:
    return json.dumps([{"role": "user", "content": text}])


def make_warehouse(path: Path, generations: list[tuple], feedback: list[tuple]) -> Path:
    """A DuckDB warehouse with the demo's two tables holding exactly the given rows.

    generations: (request_id, minutes after T0, user_id, model_version, messages_json, response)
    feedback:    (event_id, request_id, minutes after T0, user_id, kind, value, other_request_id)
    """
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE IF NOT EXISTS generations (request_id VARCHAR PRIMARY KEY, ts TIMESTAMP, user_id VARCHAR,"
        " model_version VARCHAR, messages VARCHAR, response VARCHAR)"
    )
    con.execute(
        "CREATE TABLE IF NOT EXISTS feedback_events (event_id VARCHAR PRIMARY KEY, request_id VARCHAR, ts TIMESTAMP,"
        " user_id VARCHAR, kind VARCHAR, value VARCHAR, other_request_id VARCHAR)"
    )
    if generations:
        con.executemany(
            "INSERT INTO generations VALUES (?, ?, ?, ?, ?, ?)",
            [(r, T0 + timedelta(minutes=m), u, v, msg, resp) for r, m, u, v, msg, resp in generations],
        )
    if feedback:
        con.executemany(
            "INSERT INTO feedback_events VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(e, r, T0 + timedelta(minutes=m), u, k, val, o) for e, r, m, u, k, val, o in feedback],
        )
    con.close()
    return path


@pytest.fixture
def small_warehouse(tmp_path: Path) -> Path:
    """Two prompts; thumbs and one comparison; one malformed thumb; one feedback whose generation is late."""
    return make_warehouse(
        tmp_path / "warehouse.duckdb",
        generations=[
            ("r1", 0, "u1", "v1", chat("What is 2 + 2?"), "2 + 2 = 4. Happy to help!"),
            ("r2", 1, "u2", "v1", chat("What is 2 + 2?"), "Ugh. It's 4, obviously."),
            ("r3", 2, "u3", "v1", chat("Capital of France?"), "The capital of France is Paris."),
        ],
        feedback=[
            ("f1", "r1", 10, "u1", "thumb", "up", None),
            ("f2", "r2", 11, "u2", "thumb", "down", None),
            ("f3", "r1", 12, "u4", "comparison", "a", "r2"),
            ("f4", "r3", 13, "u3", "thumb", "meh", None),
            ("f5", "r9", 14, "u5", "thumb", "up", None),
        ],
    )
