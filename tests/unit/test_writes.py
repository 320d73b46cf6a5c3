"""Bulk inserts into the store run on one DuckDB thread; the ingest's thread setting holds everywhere else."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from pipeline.loading.writes import one_thread


def threads(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT current_setting('threads')").fetchone()[0])


def test_one_thread_inside_and_the_setting_restored_after():
    con = duckdb.connect()
    con.execute("SET threads = 3")
    with one_thread(con):
        assert threads(con) == 1
    assert threads(con) == 3


def test_restored_when_the_statement_fails():
    con = duckdb.connect()
    con.execute("SET threads = 2")
    with pytest.raises(duckdb.CatalogException), one_thread(con):
        con.execute("INSERT INTO no_such_table VALUES (1)")
    assert threads(con) == 2


def test_an_ingest_with_two_threads_stores_what_one_thread_stores_and_keeps_its_setting(tmp_path):
    from benchmarks.ingest import SOURCE, write_warehouse
    from connectors.duckdb_file import DuckDBConnector, DuckDBSettings
    from pipeline.config import IngestSettings, SourceSettings
    from pipeline.store import FeedbackStore

    wh = tmp_path / "wh.duckdb"
    write_warehouse(wh, 3000)
    src = SourceSettings(name=SOURCE, options={"path": str(wh)})
    conn = DuckDBConnector(DuckDBSettings(path=wh))
    with FeedbackStore(tmp_path / "t1.duckdb"):
        pass
    shutil.copyfile(tmp_path / "t1.duckdb", tmp_path / "t2.duckdb")  # one user-id salt for both
    for n in (1, 2):
        with FeedbackStore(tmp_path / f"t{n}.duckdb") as store:
            result = store.ingest(src, conn, settings=IngestSettings(threads=n))
            assert result.unpaired_added > 0 and result.pairs_added > 0
            assert threads(store.con) == n
    con = duckdb.connect()
    con.execute(f"ATTACH '{tmp_path / 't1.duckdb'}' AS one (READ_ONLY)")
    con.execute(f"ATTACH '{tmp_path / 't2.duckdb'}' AS two (READ_ONLY)")
    for table in ("unpaired", "pairs", "quarantine", "raw_events_generations", "raw_events_feedback"):
        cols = "* EXCLUDE (batch_id, ingested_at)" if table in ("unpaired", "pairs") else "*"
        if table == "quarantine":
            cols = "event_id, reason, input, key"  # its payload holds the canonical row with its load time
        for a, b in (("one", "two"), ("two", "one")):
            extra = con.execute(f"SELECT count(*) FROM (SELECT {cols} FROM {a}.{table} "
                                f"EXCEPT ALL SELECT {cols} FROM {b}.{table})").fetchone()[0]
            assert extra == 0, (table, a, b)
        assert con.execute(f"SELECT count(*) FROM one.{table}").fetchone()[0] > 0, table
