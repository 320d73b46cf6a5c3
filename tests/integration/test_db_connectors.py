"""The database connectors against the real servers: what each failure looks like (one line, the
right kind, no secret), views without the cursor column, queries instead of tables."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from alignloop.connectors.base import ConnectorTerminalError, ConnectorTransientError, Window
from alignloop.connectors.mysql import MySQLConnector, MySQLSettings
from alignloop.connectors.postgres import PostgresConnector, PostgresSettings
from alignloop.connectors.sqlite import SQLiteConnector, SQLiteSettings
from tests.contract.servers import MYSQL_HOST, MYSQL_PORT, PG_HOST, PG_PORT, mysql_database, postgres_database, writable

T0 = datetime(2026, 10, 1)
PW = f"pw-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def pg_db():
    with postgres_database() as db:
        with writable("postgres", f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{db}") as con:
            con.execute("CREATE TABLE db.events (id VARCHAR, created TIMESTAMP, kind VARCHAR)")
            con.executemany("INSERT INTO db.events VALUES (?, ?, ?)",
                            [(f"e{i}", T0 + timedelta(hours=i), "pair" if i % 2 else "thumb") for i in range(6)])
            con.execute("CALL postgres_execute('db', 'CREATE VIEW events_view AS SELECT id, kind FROM events')")
        yield db


def _pg(db: str, **options) -> PostgresConnector:
    return PostgresConnector(PostgresSettings.model_validate(
        {"dsn": f"postgresql://postgres:{PW}@{PG_HOST}:{PG_PORT}/{db}", **options}))


def test_postgres_unknown_database_is_terminal_and_names_it_without_the_password(pg_db):
    with pytest.raises(ConnectorTerminalError) as caught:
        _pg("no_such_db_zz").check()
    text = str(caught.value)
    assert 'database "no_such_db_zz" does not exist' in text and PW not in text and "\n" not in text
    assert text.startswith(f"postgres: cannot connect to {PG_HOST}:{PG_PORT}/no_such_db_zz as postgres")


def test_postgres_unreachable_port_is_transient_and_quick():
    connector = PostgresConnector(PostgresSettings(dsn=f"postgresql://postgres:{PW}@127.0.0.1:1/x", connect_timeout=2))
    with pytest.raises(ConnectorTransientError) as caught:
        connector.check()
    assert "connection refused" in str(caught.value).lower() and PW not in str(caught.value)


def test_mysql_unreachable_port_is_transient():
    connector = MySQLConnector(MySQLSettings(dsn=f"mysql://root:{PW}@127.0.0.1:1/test"))
    with pytest.raises(ConnectorTransientError) as caught:
        connector.check()
    assert PW not in str(caught.value) and "it is retried" in str(caught.value)


def test_postgres_view_without_the_cursor_column_is_one_line_naming_it(pg_db):
    window = Window(table="events_view", cursor_column="created", columns=("id", "kind", "created"))
    with pytest.raises(ConnectorTerminalError) as caught:
        list(_pg(pg_db).read(window))
    assert str(caught.value) == (
        "postgres: table events_view has no column 'created' (the cursor column; it has id, kind); map the "
        "source's columns to the shape's in the config, or read a view that has them")


def test_postgres_query_runs_on_the_server_and_the_window_applies_to_its_rows(pg_db):
    connector = _pg(pg_db, query={"pairs": "SELECT id, created FROM events WHERE kind = 'pair'"})
    window = Window(table="pairs", cursor_column="created", start=T0 + timedelta(hours=2), columns=("id",))
    ids = [v for b in connector.read(window) for v in b.column("id").to_pylist()]
    assert ids == ["e3", "e5"]
    assert connector.count(Window(table="pairs", cursor_column="created")) == 3


def test_one_query_for_two_tables_is_refused_not_read_twice(pg_db):
    connector = _pg(pg_db, query="SELECT id, created FROM events")
    list(connector.read(Window(table="generations", cursor_column="created")))
    with pytest.raises(ConnectorTerminalError, match="give query as a mapping"):
        list(connector.read(Window(table="feedback", cursor_column="created")))


def test_password_option_is_injected_into_the_dsn_and_never_described():
    connector = PostgresConnector(PostgresSettings(dsn="postgresql://loader@db.internal:6543/fb", password="p@ss:w/rd"))
    target = connector.target()
    assert target.attach == "postgresql://loader:p%40ss%3Aw%2Frd@db.internal:6543/fb?connect_timeout=10"
    assert target.describe == "db.internal:6543/fb as loader" and "p@ss:w/rd" in target.secrets


def test_mysql_database_that_does_not_exist_is_terminal():
    with mysql_database():
        connector = MySQLConnector(MySQLSettings(dsn=f"mysql://root@{MYSQL_HOST}:{MYSQL_PORT}/no_such_db_zz"))
        with pytest.raises(ConnectorTerminalError) as caught:
            connector.check()
    assert "no_such_db_zz" in str(caught.value) and "\n" not in str(caught.value)


def test_sqlite_given_a_jsonl_file_says_so_in_one_line(tmp_path):
    path = tmp_path / "feedback.jsonl"
    path.write_text('{"prompt": "hi", "chosen": "a", "rejected": "b"}\n')
    with pytest.raises(ConnectorTerminalError) as caught:
        SQLiteConnector(SQLiteSettings(path=path)).check()
    assert str(caught.value) == (
        "sqlite: feedback.jsonl is not an SQLite database file; for JSONL, JSON, CSV or Parquet files use "
        "`connector: files` with options.path")


def test_duckdb_given_a_jsonl_file_says_so_in_one_line(tmp_path):
    from alignloop.connectors.duckdb_file import DuckDBConnector, DuckDBSettings

    path = tmp_path / "feedback.jsonl"
    path.write_text('{"prompt": "hi", "chosen": "a", "rejected": "b"}\n')
    with pytest.raises(ConnectorTerminalError) as caught:
        DuckDBConnector(DuckDBSettings(path=path)).check()
    text = str(caught.value)
    assert "feedback.jsonl is not a DuckDB database file" in text and "connector: files" in text and "\n" not in text


def test_a_query_the_server_cannot_prepare_is_terminal_not_retried(pg_db):
    from tests.contract.servers import mysql_database

    broken = [_pg(pg_db, query="SELEC nonsense"), _pg(pg_db, query="SELECT * FROM no_such_tab")]
    with mysql_database() as db:
        broken.append(MySQLConnector(MySQLSettings(dsn=f"mysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{db}",
                                                   query="SELECT * FROM no_such_tab")))
        for connector in broken:
            with pytest.raises(ConnectorTerminalError) as caught:
                list(connector.read(Window(table="prefs", cursor_column="ts")))
            assert "options.query" in str(caught.value) and "\n" not in str(caught.value)


def test_sqlite_query_that_does_not_parse_is_one_terminal_line(tmp_path):
    import sqlite3

    path = tmp_path / "f.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE prefs (id TEXT)")
    with pytest.raises(ConnectorTerminalError) as caught:
        list(SQLiteConnector(SQLiteSettings(path=path, query="SELEC 1")).read(Window(table="prefs", cursor_column="ts")))
    assert str(caught.value).startswith("sqlite: options.query: Parser Error: syntax error")
