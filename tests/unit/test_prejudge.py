"""Judging the landed rows before the ingest's transaction (FeedbackStore._prejudge) stores exactly what
judging them inside it stores, run after run; it is used when the read replaces nothing stored."""

from __future__ import annotations

import shutil
from datetime import datetime

import duckdb

from alignloop.benchmarks.ingest import SOURCE, append_one_percent, write_warehouse
from alignloop.connectors.duckdb_file import DuckDBConnector, DuckDBSettings
from alignloop.config import SourceSettings
from alignloop.ingest.store import FeedbackStore

NOW = datetime(2026, 11, 1)
# What each store must hold alike (times of loading are fixed by NOW; payloads hold them too).
TABLES = {
    "unpaired": "*", "pairs": "*", "quarantine": "event_id, reason, payload, batch_id, input, key, ts",
    "pending": "*", "conflicts": "*", "cursors": "source, input, position, kind, batch_id",
    "raw_events_generations": "*", "raw_events_feedback": "*", "superseded_unpaired": "*", "superseded_pairs": "*",
}


def _runs():
    """Each run's change to the warehouse before it is ingested."""
    def late_feedback(con):  # feedback on a generation that arrives only in the next run: it waits
        con.execute("INSERT INTO feedback_events SELECT 'late-fb', request_id || '-next', ts + INTERVAL 1 MINUTE, "
                    "user_id, 'thumb', 'up', NULL FROM generations ORDER BY ts DESC LIMIT 1")

    def late_generation(con):
        con.execute("INSERT INTO generations SELECT request_id || '-next', ts + INTERVAL 2 MINUTE, user_id, "
                    "model_version, messages, response || ' (late)' FROM generations ORDER BY ts DESC LIMIT 1")

    def upstream_fix(con):  # the same generation, new content, a newer time: replaces the stored version
        con.execute("UPDATE generations SET response = response || ' (fixed)', ts = ts + INTERVAL 3 MINUTE "
                    "WHERE request_id = (SELECT request_id FROM feedback_events WHERE kind = 'thumb' "
                    "AND value IN ('up', 'down') ORDER BY ts DESC LIMIT 1 OFFSET 5)")

    def nothing(con):
        pass

    return [nothing, late_feedback, late_generation, nothing, upstream_fix]


def _ingest_all(tmp_path, name, empty, monkeypatch, prejudge: bool) -> list[bool]:
    wh = tmp_path / f"{name}.warehouse.duckdb"
    shutil.copyfile(tmp_path / "warehouse.duckdb", wh)
    store_path = tmp_path / f"{name}.duckdb"
    shutil.copyfile(empty, store_path)   # one user-id salt for both stores
    src = SourceSettings(name=SOURCE, options={"path": str(wh)})
    conn = DuckDBConnector(DuckDBSettings(path=wh))
    used: list[bool] = []
    real = FeedbackStore._prejudge

    def recorded(self, *args):
        used.append(real(self, *args) if prejudge else False)
        return used[-1]

    monkeypatch.setattr(FeedbackStore, "_prejudge", recorded)
    for change in _runs():
        con = duckdb.connect(str(wh))
        change(con)
        con.close()
        with FeedbackStore(store_path) as store:
            store.ingest(src, conn, now=NOW)
    monkeypatch.setattr(FeedbackStore, "_prejudge", real)
    return used


def test_prejudged_and_judged_inside_the_transaction_store_the_same(tmp_path, monkeypatch):
    sizes = write_warehouse(tmp_path / "warehouse.duckdb", 3000)
    append_one_percent(tmp_path / "warehouse.duckdb", sizes)
    empty = tmp_path / "empty.duckdb"
    with FeedbackStore(empty):
        pass
    used = _ingest_all(tmp_path, "fast", empty, monkeypatch, prejudge=True)
    inside = _ingest_all(tmp_path, "inside", empty, monkeypatch, prejudge=False)
    # first load, late feedback, its generation, nothing new, an upstream fix (judged inside)
    assert used == [True, True, True, False, False] and inside == [False] * 5

    con = duckdb.connect()
    con.execute(f"ATTACH '{tmp_path / 'fast.duckdb'}' AS fast (READ_ONLY)")
    con.execute(f"ATTACH '{tmp_path / 'inside.duckdb'}' AS inside (READ_ONLY)")
    for table, cols in TABLES.items():
        for a, b in (("fast", "inside"), ("inside", "fast")):
            extra = con.execute(f"SELECT count(*) FROM (SELECT {cols} FROM {a}.{table} "
                                f"EXCEPT ALL SELECT {cols} FROM {b}.{table})").fetchone()[0]
            assert extra == 0, (table, a, b)
    for table in ("unpaired", "pairs", "quarantine", "conflicts", "superseded_unpaired"):
        assert con.execute(f"SELECT count(*) FROM fast.{table}").fetchone()[0] > 0, table
    # the late feedback waited one run, then landed with its generation
    assert con.execute("SELECT count(*) FROM fast.unpaired WHERE event_id = md5('prod:late-fb')").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM fast.pending").fetchone()[0] == 0
