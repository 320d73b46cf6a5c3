"""The files connector against real files: every format lands the same rows as the table they came from,
files already loaded are not read again, new or changed files are, and bad files get one clear line."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from alignloop.connectors.base import ConnectorTerminalError, Window
from alignloop.connectors.duckdb_file import DuckDBConnector, DuckDBSettings
from alignloop.connectors.files import FilesConnector, FilesSettings
from alignloop import stages
from alignloop.config import IngestSettings, SourceSettings, settings_from_dict
from alignloop.errors import TerminalError
from alignloop.ingest.store import FeedbackStore
from tests.conftest import chat
from tests.integration.files_fixtures import write_file
from tests.integration.landing import ingest_from_warehouse, store_contents, warehouse_tables


def _files_source(path: str, name: str = "prod", **options) -> tuple[SourceSettings, FilesConnector]:
    src = SourceSettings(name=name, connector="files", options={"path": path, **options})
    return src, FilesConnector(FilesSettings(path=path, **options))


@pytest.mark.parametrize(
    "gen_fmt, fb_fmt", [("jsonl.gz", "csv"), ("parquet", "json"), ("csv.gz", "jsonl")]
)
def test_each_format_lands_exactly_the_rows_of_the_table(tmp_path, small_warehouse, gen_fmt, fb_fmt):
    tables = warehouse_tables(small_warehouse)
    export = tmp_path / "export"
    # Split each table over two files so the glob, not one file, is what is read.
    for table, fmt in (("generations", gen_fmt), ("feedback_events", fb_fmt)):
        rows = tables[table]
        write_file(rows.slice(0, 2), export / table / f"part-0.{fmt}")
        write_file(rows.slice(2), export / table / f"part-1.{fmt}")
    config = {
        "target": "t", "base_model": {"tiny": True},
        "sources": [{"name": "prod", "connector": "files", "options": {"path": "export/{table}/*"}}],
    }
    settings = settings_from_dict(config, base_dir=tmp_path)
    [result] = stages.ingest(settings)
    with FeedbackStore(settings.store_path) as store:
        via_files = store_contents(store)
        salt = store.user_salt
    with FeedbackStore(tmp_path / "reference.duckdb") as store:
        ingest_from_warehouse(store, small_warehouse, salt_of=salt)
        via_table = store_contents(store)
    # CSV has no types: its times are read as the text they are, and the cursor keeps that text.
    cursors = {name: [(s, i, datetime.fromisoformat(p)) for s, i, p in contents.pop("cursors")]
               for name, contents in (("files", via_files), ("table", via_table))}
    assert via_files == via_table and cursors["files"] == cursors["table"]
    assert result.rows_read == {"generations": 3, "feedback": 5}
    assert (result.unpaired_added, result.pairs_added, result.quarantined) == (2, 1, 1)


def test_loaded_file_is_not_read_again_and_a_new_file_is_even_with_older_rows(tmp_path, small_warehouse):
    tables = warehouse_tables(small_warehouse)
    write_file(tables["generations"], tmp_path / "generations" / "day1.jsonl")
    write_file(tables["feedback_events"].slice(2), tmp_path / "feedback_events" / "day1.jsonl")
    src, conn = _files_source(str(tmp_path / "{table}" / "*.jsonl"))
    with FeedbackStore(tmp_path / "store.duckdb") as store:
        first = store.ingest(src, conn)
        again = store.ingest(src, conn)
        # A late export: its rows are older than the newest row already loaded.
        write_file(tables["feedback_events"].slice(0, 2), tmp_path / "feedback_events" / "day0-late.jsonl")
        late = store.ingest(src, conn)
        loaded = store.con.execute("SELECT input, file FROM loaded_files ORDER BY ALL").fetchall()
        totals = store.counts()
    assert first.rows_read == {"generations": 3, "feedback": 3}
    assert again.rows_read == {"generations": 0, "feedback": 0}
    assert late.rows_read == {"generations": 0, "feedback": 2}
    assert totals["raw_events_feedback"] == 5
    assert [(i, Path(f).name) for i, f in loaded] == [
        ("feedback", "day0-late.jsonl"), ("feedback", "day1.jsonl"), ("generations", "day1.jsonl")
    ]


def test_changed_file_is_reread_and_rows_keyed_by_content_hash_never_duplicate(tmp_path, small_warehouse):
    tables = warehouse_tables(small_warehouse)
    write_file(tables["generations"], tmp_path / "generations.jsonl")
    # Feedback exported without ids: its rows are keyed by their content hash.
    feedback = tables["feedback_events"].drop_columns(["event_id"])
    write_file(feedback.slice(0, 3), tmp_path / "feedback_events.csv")
    src = SourceSettings(
        name="prod", connector="files", options={"path": str(tmp_path / "{table}.*")},
        mapping={"feedback": {"event_id": "_row_hash"}},
    )
    conn = FilesConnector(FilesSettings(path=str(tmp_path / "{table}.*")))
    # One of the two appended rows is bad (a thumb value): no share of bad rows stops this test.
    settings = IngestSettings(max_bad_share=1.0)
    with FeedbackStore(tmp_path / "store.duckdb") as store:
        first = store.ingest(src, conn, settings=settings)
        write_file(feedback, tmp_path / "feedback_events.csv")  # the same file, two rows appended
        second = store.ingest(src, conn, settings=settings)
        third = store.ingest(src, conn, settings=settings)
        keys = store.con.execute("SELECT count(DISTINCT event_id), count(*) FROM raw_events_feedback").fetchone()
        files = store.con.execute("SELECT count(*) FROM loaded_files WHERE input = 'feedback'").fetchone()[0]
    assert first.raw_added["feedback"] == 3
    assert (second.rows_read["feedback"], second.raw_added["feedback"]) == (5, 2)
    assert third.rows_read["feedback"] == 0
    assert keys == (5, 5)
    assert files == 2  # both versions of the file are remembered


def test_failed_ingest_records_no_file_as_loaded(tmp_path, small_warehouse):
    tables = warehouse_tables(small_warehouse)
    write_file(tables["generations"], tmp_path / "generations.parquet")
    write_file(tables["feedback_events"].drop_columns(["kind"]), tmp_path / "feedback_events.csv")
    src, conn = _files_source(str(tmp_path / "{table}.*"))
    with FeedbackStore(tmp_path / "store.duckdb") as store:
        with pytest.raises(TerminalError) as err:
            store.ingest(src, conn)
        assert store.con.execute("SELECT count(*) FROM loaded_files").fetchone()[0] == 0
        assert store.counts()["raw_events_generations"] == 0
        write_file(tables["feedback_events"], tmp_path / "feedback_events.csv")
        fixed = store.ingest(src, conn)
    message = str(err.value)
    assert "\n" not in message
    assert "feedback_events.csv has no column 'kind'" in message and "mapping" in message
    assert fixed.rows_read == {"generations": 3, "feedback": 5}


def test_reads_bounded_batches_and_the_same_window_gives_the_same_rows(tmp_path, small_warehouse):
    path = write_file(warehouse_tables(small_warehouse)["feedback_events"], tmp_path / "fb.jsonl.gz")
    conn = FilesConnector(FilesSettings(path=str(path), batch_size=2))
    # As the core reads it: tracking files (none loaded yet), and the row hash asked for as a column.
    window = Window(table="feedback_events", cursor_column="ts", columns=("event_id", "ts", "_row_hash"),
                    loaded_files=frozenset())
    batches = list(conn.read(window))
    assert [b.num_rows for b in batches] == [2, 2, 1]
    rows = pa.Table.from_batches(batches)
    assert rows.column_names == ["event_id", "ts", "_row_hash", "_file", "_file_hash"]
    assert sorted(rows.column("event_id").to_pylist()) == ["f1", "f2", "f3", "f4", "f5"]
    assert rows.column("_file").unique().to_pylist() == [str(path)]
    assert len(set(rows.column("_row_hash").to_pylist())) == 5
    assert pa.Table.from_batches(conn.read(window)).equals(rows)
    at = datetime(2026, 10, 1, 12, 11)
    assert sum(b.num_rows for b in conn.read(Window("feedback_events", "ts", start=at, end=at))) == 0
    every = pa.Table.from_batches(conn.read(Window("feedback_events", "ts", loaded_files=frozenset())))
    assert every.column_names == [*warehouse_tables(small_warehouse)["feedback_events"].column_names, "_file", "_file_hash"]
    # A source without a cursor (shapes with no time column) reads every row, in file order.
    no_cursor = pa.Table.from_batches(conn.read(Window("feedback_events", None, columns=("event_id",))))
    assert no_cursor.column("event_id").to_pylist() == ["f1", "f2", "f3", "f4", "f5"]
    # Without file tracking, only the declared columns come back.
    plain = pa.Table.from_batches(conn.read(Window("feedback_events", "ts", columns=("ts", "event_id"))))
    assert plain.column_names == ["ts", "event_id"] and plain.num_rows == 5
    skip = Window("feedback_events", "ts", loaded_files=frozenset({(str(path), rows.column("_file_hash")[0].as_py())}))
    assert list(conn.read(skip)) == []


def test_a_file_in_the_wrong_format_gets_one_line(tmp_path, small_warehouse):
    tables = warehouse_tables(small_warehouse)
    jsonl = write_file(tables["generations"], tmp_path / "generations.jsonl")
    disguised = tmp_path / "generations.parquet"
    disguised.write_bytes(jsonl.read_bytes())
    window = Window(table="generations", cursor_column="ts")
    with pytest.raises(ConnectorTerminalError) as err:
        list(FilesConnector(FilesSettings(path=str(disguised))).read(window))
    assert "could not be read as parquet" in str(err.value) and "options.format" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(ConnectorTerminalError, match="cannot tell the format of .*generations.txt.*options.format"):
        (tmp_path / "generations.txt").write_text("x")
        list(FilesConnector(FilesSettings(path=str(tmp_path / "generations.txt"))).read(window))
    with pytest.raises(ConnectorTerminalError, match=r"missing.jsonl does not exist; set options.path"):
        FilesConnector(FilesSettings(path=str(tmp_path / "missing.jsonl"))).check()
    # A JSONL export handed to the duckdb connector.
    with pytest.raises(ConnectorTerminalError) as err:
        DuckDBConnector(DuckDBSettings(path=jsonl)).check()
    assert str(err.value) == (
        f"duckdb: {jsonl} is not a DuckDB database file (.jsonl); for JSONL, JSON, CSV or Parquet files "
        f"use `connector: files` with options.path"
    )
    # The duckdb connector still opens real DuckDB files.
    duckdb.connect(str(tmp_path / "real.duckdb")).close()
    DuckDBConnector(DuckDBSettings(path=tmp_path / "real.duckdb")).check()


def test_jsonl_rows_with_chat_messages_keep_their_text(tmp_path):
    rows = pa.table({"request_id": ["r1"], "ts": ["2026-10-01 12:00:00"], "messages": [chat("Hi, \"quoted\"\nline")]})
    path = write_file(rows, tmp_path / "g.jsonl")
    got = pa.Table.from_batches(FilesConnector(FilesSettings(path=str(path))).read(Window("g", "ts")))
    assert got.column("messages").to_pylist() == [chat("Hi, \"quoted\"\nline")]
