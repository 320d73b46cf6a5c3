"""`alignloop bench ingest`'s harness, and what keeps a run with nothing new cheap (observable, not timed)."""

from __future__ import annotations

import re

from alignloop.benchmarks.ingest import bench_ingest, write_warehouse
from alignloop.connectors.duckdb_file import DuckDBConnector, DuckDBSettings
from alignloop.config import SourceSettings
from alignloop.ingest.store import FeedbackStore


def test_run_with_nothing_new_reads_no_stored_text_and_judges_nothing(tmp_path):
    wh = tmp_path / "warehouse.duckdb"
    write_warehouse(wh, 400)   # every feedback event names generations in the warehouse: nothing waits
    src = SourceSettings(name="prod", options={"path": str(wh)})
    conn = DuckDBConnector(DuckDBSettings(path=wh))
    with FeedbackStore(tmp_path / "store.duckdb") as store:
        first = store.ingest(src, conn)
        assert first.unpaired_added + first.pairs_added > 0 and first.pending == 0
        before = store.counts()
        store.con.execute("CALL enable_logging('QueryLog')")
        again = store.ingest(src, conn)
        queries = [q for (q,) in store.con.execute("SELECT message FROM duckdb_logs").fetchall()]
        assert store.counts() == before
    assert (again.unpaired_added, again.pairs_added, again.quarantined, sum(again.raw_added.values())) == (0, 0, 0, 0)
    assert sum(again.rows_read.values()) > 0   # the look-back window was read again ...
    reads = [q for q in queries if re.search(r"FROM raw_events_(generations|feedback)\b", q)]
    assert reads   # ... and compared with the stored rows by key and content hash only:
    assert not [q for q in reads if re.search(r"\b(messages|response|from_json)\b", q)]
    assert not [q for q in queries if "events_classified" in q]   # nothing landed, so nothing is judged


def test_bench_ingest_runs_all_three_on_one_warehouse_and_checks_their_rows(tmp_path):
    result = bench_ingest(2000, tmp_path, threads=1, repeats=2)
    assert result["same_canonical_rows"] and result["canonical_rows"] > 0
    assert len(result["runs"]) == 2 and result["repeats"] == 2
    assert result["incremental_rows_appended"] == 12 + 8   # 1 % of 1,200 generations and of 800 events
    assert result["nothing_new_added"] == 0
    for key in ("rows", "seconds", "rows_per_s", "peak_rss_bytes", "speedup_vs_pandas", "raw_duckdb_ratio",
                "incremental_ratio"):
        assert result[key] > 0


def test_bench_ingest_without_baselines_times_alignloop_alone_under_a_memory_limit(tmp_path):
    result = bench_ingest(1000, tmp_path, threads=1, baselines=False, memory_limit="1GB")
    assert result["canonical_rows"] > 0 and result["memory_limit"] == "1GB"
    assert result["pandas_seconds"] is None and result["speedup_vs_pandas"] is None
    assert result["raw_duckdb_ratio"] is None and result["runs"][0]["pandas_seconds"] is None
    assert not (tmp_path / "pandas.parquet").exists() and not (tmp_path / "raw.duckdb").exists()


def test_the_ingest_profile_times_a_first_load_statement_by_statement(tmp_path):
    from alignloop.benchmarks.ingest_profile import profile

    result = bench_ingest(1000, tmp_path, threads=1, baselines=False)   # leaves the store after two more runs
    ingest, measure, log = profile(tmp_path, threads=2)
    statements = [s for _, s in log]
    assert ingest > 0 and measure > 0
    assert "COMMIT" in statements and any(s.startswith("INSERT INTO unpaired") for s in statements)
    assert any("events_classified" in s for s in statements)
    # a first load again: the store was restored from its empty copy, the warehouse from its original
    with FeedbackStore(tmp_path / "feedback.duckdb") as store:
        counts = store.counts()
        assert store.con.execute("SELECT count(*) FROM ingest_log").fetchone()[0] == 1
    assert counts["unpaired"] + counts["pairs"] == result["canonical_rows"]
