"""Bulk inserts into the store run on one DuckDB thread; the ingest's thread setting holds everywhere else."""

from __future__ import annotations

import shutil
from datetime import datetime

import duckdb
import pytest

from alignloop.ingest.writes import joins_as_written, one_thread, spilled


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
    from alignloop.benchmarks.ingest import SOURCE, write_warehouse
    from alignloop.connectors.duckdb_file import DuckDBConnector, DuckDBSettings
    from alignloop.config import IngestSettings, SourceSettings
    from alignloop.ingest.store import FeedbackStore
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


def test_spilled_says_whether_duckdb_keeps_data_in_temporary_files(tmp_path):
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    con.execute("CREATE TEMP TABLE small AS SELECT range AS i FROM range(1000)")
    assert not spilled(con)
    con.execute("SET memory_limit = '20MB'")
    con.execute("CREATE TEMP TABLE big AS SELECT range::VARCHAR || repeat('x', 50) AS s FROM range(2000000)")
    assert spilled(con)


def test_landing_inserts_use_one_thread_unless_duckdb_has_spilled_and_store_the_same_rows_either_way(tmp_path):
    from alignloop.benchmarks.ingest import SOURCE, write_warehouse
    from alignloop.benchmarks.ingest_profile import TimedConnection
    from alignloop.connectors.duckdb_file import DuckDBConnector, DuckDBSettings
    from alignloop.config import IngestSettings, SourceSettings
    from alignloop.ingest.store import FeedbackStore
    from tests.integration.landing import store_contents

    wh = tmp_path / "wh.duckdb"
    write_warehouse(wh, 3000)
    src = SourceSettings(name=SOURCE, options={"path": str(wh)})
    with FeedbackStore(tmp_path / "in-memory.duckdb"):
        pass
    shutil.copyfile(tmp_path / "in-memory.duckdb", tmp_path / "spilled.duckdb")  # one user-id salt for both
    contents, landing_after = {}, {}
    for name in ("in-memory", "spilled"):
        log: list[tuple[float, str]] = []
        with FeedbackStore(tmp_path / f"{name}.duckdb") as store:
            con = store.con
            if name == "spilled":  # as a large read under ingest.memory_limit leaves it: part of DuckDB's data on disk
                con.execute("SET memory_limit = '20MB'")
                con.execute("CREATE TEMP TABLE big AS SELECT range::VARCHAR || repeat('x', 50) AS s FROM range(2000000)")
                con.execute("RESET memory_limit")
            assert spilled(con) == (name == "spilled")
            store.con = TimedConnection(con, log)
            result = store.ingest(src, DuckDBConnector(DuckDBSettings(path=wh)), settings=IngestSettings(threads=2),
                                  now=datetime(2026, 11, 1))
            store.con = con
            assert result.unpaired_added > 0 and result.pairs_added > 0
            assert threads(con) == 2
            contents[name] = store_contents(store)
        statements = [s for _, s in log]
        landing_after[name] = [statements[i - 1] for i, s in enumerate(statements)
                               if s.startswith("INSERT INTO raw_events_")]
    assert landing_after["in-memory"] == ["SET threads = 1"] * 2
    assert len(landing_after["spilled"]) == 2 and "SET threads = 1" not in landing_after["spilled"]
    assert contents["in-memory"] == contents["spilled"]
