"""Bulk inserts into the store run on one DuckDB thread; the ingest's thread setting holds everywhere else."""

from __future__ import annotations

import shutil
from datetime import datetime

import duckdb
import pytest

from pipeline.loading.writes import joins_as_written, one_thread


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


def disabled(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT current_setting('disabled_optimizers')").fetchone()[0]


def test_joins_as_written_adds_to_the_disabled_optimizers_and_restores_them_even_on_failure():
    con = duckdb.connect()
    con.execute("SET disabled_optimizers = 'top_n'")
    with joins_as_written(con):
        assert set(disabled(con).split(",")) == {"top_n", "join_order", "build_side_probe_side"}
    assert disabled(con) == "top_n"
    with pytest.raises(duckdb.CatalogException), joins_as_written(con):
        con.execute("SELECT * FROM no_such_table")
    assert disabled(con) == "top_n"


def test_an_ingest_with_two_threads_stores_what_one_thread_stores_and_keeps_its_setting(tmp_path):
    from benchmarks.ingest import SOURCE, write_warehouse
    from connectors.duckdb_file import DuckDBConnector, DuckDBSettings
    from pipeline.config import IngestSettings, SourceSettings
    from pipeline.store import FeedbackStore
    from tests.integration.landing import store_contents

    wh = tmp_path / "wh.duckdb"
    write_warehouse(wh, 3000)
    src = SourceSettings(name=SOURCE, options={"path": str(wh)})
    conn = DuckDBConnector(DuckDBSettings(path=wh))
    with FeedbackStore(tmp_path / "t1.duckdb"):
        pass
    shutil.copyfile(tmp_path / "t1.duckdb", tmp_path / "t2.duckdb")  # one user-id salt for both
    contents = {}
    for n in (1, 2):
        with FeedbackStore(tmp_path / f"t{n}.duckdb") as store:
            # one load time for both: quarantined canonical rows carry it in their payload
            result = store.ingest(src, conn, settings=IngestSettings(threads=n), now=datetime(2026, 11, 1))
            assert result.unpaired_added > 0 and result.pairs_added > 0 and result.quarantined > 0
            assert threads(store.con) == n
            assert disabled(store.con) == ""  # the events shape's joins as written: for its inserts only
            contents[n] = store_contents(store)
    assert contents[1] == contents[2]
