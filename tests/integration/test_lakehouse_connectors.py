"""The delta and iceberg connectors on tables the tests write locally: the same rows as the source table,
cursor windows that read only new rows, and one clear line for a path or table that is not there."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from alignloop.connectors.base import ConnectorTerminalError, Window
from alignloop.connectors.delta import DeltaConnector, DeltaSettings
from alignloop.connectors.iceberg import IcebergConnector, IcebergSettings
from alignloop.config import SourceSettings
from alignloop.ingest.store import FeedbackStore
from tests.conftest import T0, chat
from tests.integration.landing import TABLES, ingest_from_warehouse, store_contents, warehouse_tables


def _later_rows(tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """One new generation and one thumb on it, an hour after everything else."""
    gen, fb = tables["generations"], tables["feedback_events"]
    new_gen = pa.table({"request_id": ["r7"], "ts": [T0 + timedelta(hours=1)], "user_id": ["u7"], "model_version": ["v2"],
                        "messages": [chat("Capital of Spain?")], "response": ["Madrid."]}, schema=gen.schema)
    new_fb = pa.table({"event_id": ["f7"], "request_id": ["r7"], "ts": [T0 + timedelta(hours=1, minutes=1)],
                       "user_id": ["u7"], "kind": ["thumb"], "value": ["up"], "other_request_id": [None]}, schema=fb.schema)
    return {"generations": new_gen, "feedback_events": new_fb}


def _delta(tmp_path: Path, small_warehouse: Path) -> tuple[Path, dict[str, pa.Table]]:
    from deltalake import write_deltalake

    tables = warehouse_tables(small_warehouse)
    for name in TABLES:
        write_deltalake(str(tmp_path / "lake" / name), tables[name])
    return tmp_path / "lake", tables


def _iceberg(tmp_path: Path, small_warehouse: Path):
    from pyiceberg.catalog.sql import SqlCatalog

    uri = f"sqlite:///{tmp_path / 'catalog.db'}"
    warehouse = f"file://{tmp_path / 'warehouse'}"
    (tmp_path / "warehouse").mkdir()
    catalog = SqlCatalog("default", uri=uri, warehouse=warehouse)
    catalog.create_namespace("fb")
    tables = warehouse_tables(small_warehouse)
    for name in TABLES:
        catalog.create_table(f"fb.{name}", schema=tables[name].schema).append(tables[name])
    return catalog, IcebergSettings(catalog_uri=uri, warehouse=warehouse), tables


def test_delta_tables_land_the_rows_of_the_source_and_then_only_new_rows(tmp_path, small_warehouse):
    from deltalake import write_deltalake

    lake, tables = _delta(tmp_path, small_warehouse)
    src = SourceSettings(name="prod", connector="delta", options={"path": f"{lake}/{{table}}"})
    conn = DeltaConnector(DeltaSettings(path=f"{lake}/{{table}}"))
    with FeedbackStore(tmp_path / "store.duckdb") as store:
        first = store.ingest(src, conn, lookback=timedelta(0))
        with FeedbackStore(tmp_path / "reference.duckdb") as ref:
            ingest_from_warehouse(ref, small_warehouse, salt_of=store)
            assert store_contents(store) == store_contents(ref)
        for name, rows in _later_rows(tables).items():
            write_deltalake(str(lake / name), rows, mode="append")
        second = store.ingest(src, conn, lookback=timedelta(0))
    assert first.rows_read == {"generations": 3, "feedback": 5}
    # The window starts at the cursor (inclusive): the newest row already landed is read again and ignored.
    assert second.rows_read == {"generations": 2, "feedback": 2}
    assert second.raw_added == {"generations": 1, "feedback": 1}
    assert second.unpaired_added == 1


def test_iceberg_tables_land_the_rows_of_the_source_and_then_only_new_rows(tmp_path, small_warehouse):
    catalog, settings, tables = _iceberg(tmp_path, small_warehouse)
    src = SourceSettings(
        name="prod", connector="iceberg", options={"catalog_uri": settings.catalog_uri.get_secret_value()},
        mapping={"generations": {"table": "fb.generations"}, "feedback": {"table": "fb.feedback_events"}},
    )
    conn = IcebergConnector(settings)
    with FeedbackStore(tmp_path / "store.duckdb") as store:
        first = store.ingest(src, conn, lookback=timedelta(0))
        with FeedbackStore(tmp_path / "reference.duckdb") as ref:
            ingest_from_warehouse(ref, small_warehouse, salt_of=store)
            assert store_contents(store) == store_contents(ref)
        for name, rows in _later_rows(tables).items():
            catalog.load_table(f"fb.{name}").append(rows)
        second = store.ingest(src, conn, lookback=timedelta(0))
    assert first.rows_read == {"generations": 3, "feedback": 5}
    assert second.rows_read == {"generations": 2, "feedback": 2}
    assert second.raw_added == {"generations": 1, "feedback": 1}


@pytest.mark.parametrize("kind", ["delta", "iceberg"])
def test_lakehouse_window_contract(tmp_path, small_warehouse, kind):
    if kind == "delta":
        lake, _ = _delta(tmp_path, small_warehouse)
        conn, table = DeltaConnector(DeltaSettings(path=f"{lake}/{{table}}", batch_size=2)), "feedback_events"
    else:
        _, settings, _ = _iceberg(tmp_path, small_warehouse)
        conn, table = IcebergConnector(settings.model_copy(update={"batch_size": 2})), "fb.feedback_events"
    conn.check()
    start, end = T0 + timedelta(minutes=11), T0 + timedelta(minutes=14)
    window = Window(table=table, cursor_column="ts", start=start, end=end, columns=("event_id", "ts", "kind"))
    batches = list(conn.read(window))
    rows = pa.Table.from_batches(batches)
    assert all(b.num_rows <= 2 for b in batches)
    assert rows.column_names == ["event_id", "ts", "kind"]
    assert sorted(rows.column("event_id").to_pylist()) == ["f2", "f3", "f4"]  # half-open: 11 <= minute < 14
    assert pa.Table.from_batches(conn.read(window)).equals(rows)
    without_cursor = pa.Table.from_batches(conn.read(Window(table, "ts", start=start, end=end, columns=("kind",))))
    assert without_cursor.column_names == ["kind"] and without_cursor.column("kind").to_pylist() == [
        "thumb", "comparison", "thumb"]
    assert sum(b.num_rows for b in conn.read(Window(table, "ts", start=start, end=start))) == 0
    no_cursor = pa.Table.from_batches(conn.read(Window(table, None, columns=("event_id",))))
    assert sorted(no_cursor.column("event_id").to_pylist()) == ["f1", "f2", "f3", "f4", "f5"]
    with pytest.raises(ConnectorTerminalError, match=r"has no column 'score'.*mapping"):
        list(conn.read(Window(table, "ts", columns=("event_id", "score"))))


def test_lakehouse_sources_that_are_not_there_get_one_line(tmp_path, small_warehouse):
    (tmp_path / "plain").mkdir()
    with pytest.raises(ConnectorTerminalError, match=r"plain is not a Delta table \(no _delta_log found\); set options"):
        list(DeltaConnector(DeltaSettings(path=str(tmp_path / "plain"))).read(Window("x", "ts")))
    _, settings, _ = _iceberg(tmp_path, small_warehouse)
    with pytest.raises(ConnectorTerminalError, match=r"no table 'fb.nope' in catalog 'default'; set the input's table"):
        list(IcebergConnector(settings).read(Window("fb.nope", "ts")))


def test_a_cursor_that_is_not_a_timestamp_is_one_line(tmp_path):
    from deltalake import write_deltalake

    write_deltalake(str(tmp_path / "t"), pa.table({"id": ["a"], "ts": [[1, 2]]}))
    window = Window("t", "ts", start=T0, columns=("id", "ts"))
    with pytest.raises(ConnectorTerminalError, match=r"^delta: table 't': cannot read the window on 'ts' \(.*\); check"):
        list(DeltaConnector(DeltaSettings(path=str(tmp_path / "t"))).read(window))


def test_a_catalog_path_that_holds_no_catalog_is_one_line_and_stays_untouched(tmp_path):
    import sqlite3

    empty = tmp_path / "not_a_catalog.db"
    sqlite3.connect(empty).close()
    conn = IcebergConnector(IcebergSettings(catalog_uri=f"sqlite:///{empty}"))
    with pytest.raises(ConnectorTerminalError, match=r"^iceberg: cannot open the catalog \(.*\); check options.catalog_uri"):
        conn.check()
    with pytest.raises(ConnectorTerminalError, match=r"^iceberg: cannot open the catalog"):
        list(conn.read(Window("fb.t", "ts")))
    assert sqlite3.connect(empty).execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


def test_delta_version_reads_the_table_as_it_was(tmp_path, small_warehouse):
    from deltalake import write_deltalake

    lake, tables = _delta(tmp_path, small_warehouse)
    write_deltalake(str(lake / "feedback_events"), _later_rows(tables)["feedback_events"], mode="append")
    window = Window("feedback_events", "ts", columns=("event_id",))
    ids = {v: sorted(i for b in DeltaConnector(DeltaSettings(path=f"{lake}/{{table}}", version=v)).read(window)
                     for i in b.column("event_id").to_pylist()) for v in (0, 1)}  # windows come in any order
    assert ids == {0: ["f1", "f2", "f3", "f4", "f5"], 1: ["f1", "f2", "f3", "f4", "f5", "f7"]}
