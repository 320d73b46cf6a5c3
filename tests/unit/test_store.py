"""The feedback store: exact canonical rows, idempotent re-runs, atomic cursors, quarantine, snapshots."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from alignloop.connectors.duckdb_file import DuckDBConnector, DuckDBSettings
from alignloop.config import SourceSettings
from alignloop.errors import ConfigError, TerminalError
from alignloop.ingest.store import FeedbackStore
from tests.conftest import chat, make_warehouse


def _source(warehouse: Path, **kw) -> tuple[SourceSettings, DuckDBConnector]:
    src = SourceSettings(name="prod", connector="duckdb", options={"path": str(warehouse)}, **kw)
    return src, DuckDBConnector(DuckDBSettings(path=warehouse))


def test_ingest_produces_exact_canonical_rows(tmp_path, small_warehouse):
    src, conn = _source(small_warehouse)
    with FeedbackStore(tmp_path / "store.duckdb") as store:
        result = store.ingest(src, conn)
        unpaired = store.con.execute(
            "SELECT prompt, completion, label FROM unpaired ORDER BY ts"
        ).fetchall()
        pairs = store.con.execute("SELECT prompt, chosen, rejected FROM pairs").fetchall()
        reasons = store.quarantine_reasons()
    q = [{"role": "user", "content": "What is 2 + 2?"}]
    assert unpaired == [(q, "2 + 2 = 4. Happy to help!", True), (q, "Ugh. It's 4, obviously.", False)]
    assert pairs == [(q, "2 + 2 = 4. Happy to help!", "Ugh. It's 4, obviously.")]
    assert reasons == [("thumb value must be 'up' or 'down'", 1)]
    assert (result.unpaired_added, result.pairs_added, result.quarantined, result.pending) == (2, 1, 1, 1)
    assert result.rows_read == {"generations": 3, "feedback": 5}


def test_rerun_of_same_window_adds_zero_rows(tmp_path, small_warehouse):
    src, conn = _source(small_warehouse)
    with FeedbackStore(tmp_path / "store.duckdb") as store:
        store.ingest(src, conn)
        before = store.counts()
        again = store.ingest(src, conn, lookback=__import__("datetime").timedelta(days=365))
        assert store.counts() == before
    assert (again.unpaired_added, again.pairs_added, again.quarantined) == (0, 0, 0)
    assert sum(again.raw_added.values()) == 0


def test_late_generation_turns_pending_feedback_into_a_row(tmp_path, small_warehouse):
    src, conn = _source(small_warehouse)
    with FeedbackStore(tmp_path / "store.duckdb") as store:
        first = store.ingest(src, conn)
        assert first.pending == 1
        # The generation f5 rated arrives later, with a newer timestamp than the cursor.
        make_warehouse(small_warehouse, [("r9", 60, "u5", "v2", chat("Capital of Spain?"), "Madrid.")], [])
        second = store.ingest(src, conn)
        assert (second.unpaired_added, second.pending) == (1, 0)
        assert store.con.execute("SELECT completion FROM unpaired WHERE model_version = 'v2'").fetchall() == [
            ("Madrid.",)
        ]


def test_cursor_advances_only_with_committed_rows(tmp_path, small_warehouse):
    src, conn = _source(small_warehouse)

    class Exploding:
        """Reads the first input, then fails: nothing of the batch may stay behind."""

        def __init__(self) -> None:
            self.calls = 0

        def read(self, window):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("connection dropped")
            yield from conn.read(window)

    with FeedbackStore(tmp_path / "store.duckdb") as store:
        with pytest.raises(RuntimeError):
            store.ingest(src, Exploding())
        assert store.cursor_position("prod", "generations") is None
        assert store.counts()["raw_events_generations"] == 0
        store.ingest(src, conn)
        assert store.cursor_position("prod", "feedback") is not None
        assert store.counts()["unpaired"] == 2


def test_event_ids_are_stable_and_user_ids_hashed_with_a_per_store_salt(tmp_path, small_warehouse):
    src, conn = _source(small_warehouse)
    ids, users, salts = [], [], []
    for name in ("a.duckdb", "b.duckdb"):
        with FeedbackStore(tmp_path / name) as store:
            store.ingest(src, conn)
            rows = store.con.execute("SELECT event_id, user_id FROM unpaired ORDER BY event_id").fetchall()
            ids.append([e for e, _ in rows])
            users.append([u for _, u in rows])
            salts.append(store.user_salt)
        with FeedbackStore(tmp_path / name) as store:
            assert store.user_salt == salts[-1]  # created once, kept
    assert ids[0] == ids[1]
    expected = [hashlib.sha256((salts[0] + u).encode()).hexdigest() for u in ("u1", "u2")]
    assert sorted(users[0]) == sorted(expected)
    # an unsalted hash of the user id (a dictionary attack away from the id) is not what is stored
    assert hashlib.sha256(b"u1").hexdigest() not in users[0]
    assert users[0] != users[1]


def test_mapping_renames_source_columns(tmp_path):
    wh = tmp_path / "wh.duckdb"
    make_warehouse(wh, [("r1", 0, "u1", "v1", chat("Hi?"), "Hello!")], [("f1", "r1", 5, "u1", "thumb", "up", None)])
    con = duckdb.connect(str(wh))
    con.execute("ALTER TABLE feedback_events RENAME COLUMN value TO rating")
    con.execute("ALTER TABLE feedback_events RENAME TO fb")
    con.close()
    src, conn = _source(wh, mapping={"feedback": {"table": "fb", "value": "rating"}})
    with FeedbackStore(tmp_path / "store.duckdb") as store:
        assert store.ingest(src, conn).unpaired_added == 1


def test_unknown_mapping_column_is_a_config_error(tmp_path, small_warehouse):
    src, conn = _source(small_warehouse, mapping={"feedback": {"rating": "value"}})
    with FeedbackStore(tmp_path / "store.duckdb") as store, pytest.raises(ConfigError, match="mapping.feedback.rating"):
        store.ingest(src, conn)


def test_missing_table_is_a_terminal_error_naming_it(tmp_path, small_warehouse):
    src, conn = _source(small_warehouse, mapping={"feedback": {"table": "nope"}})
    with FeedbackStore(tmp_path / "store.duckdb") as store, pytest.raises(TerminalError, match="nope"):
        store.ingest(src, conn)


def test_snapshot_id_depends_on_content_and_freezes_rows(tmp_path, small_warehouse):
    src, conn = _source(small_warehouse)
    with FeedbackStore(tmp_path / "store.duckdb") as store:
        store.ingest(src, conn)
        first = store.snapshot()
        assert store.snapshot().snapshot_id == first.snapshot_id
        make_warehouse(small_warehouse, [("r9", 60, "u5", "v2", chat("Capital of Spain?"), "Madrid.")], [])
        store.ingest(src, conn)
        second = store.snapshot()
        assert second.snapshot_id != first.snapshot_id
        unpaired_then, pairs_then = store.read_snapshot(first)
        unpaired_now, _ = store.read_snapshot(second)
    assert (unpaired_then.num_rows, pairs_then.num_rows, unpaired_now.num_rows) == (2, 1, 3)
    assert (first.n_unpaired, first.n_pairs) == (2, 1)
