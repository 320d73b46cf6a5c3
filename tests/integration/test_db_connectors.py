"""The database connectors against the real servers: what each failure looks like (one line, the
right kind, no secret), views without the cursor column, queries instead of tables."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import pyarrow as pa
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


# ------------------------------------------------------------------------------------- JSON text columns
# Texts a JSON column holds as JSON strings, each to land as itself: quotes, backslashes, a line break, escapes
# the JSON text writes (PostgreSQL's json keeps them as written), characters beyond ASCII.
JSON_TEXTS = {"quotes": 'He said "hi" to \'me\'', "backslashes": "C:\\path\\to \\n not a newline",
              "newline": "line one\nline two\r\n\ttabbed", "escaped": "caf\u00e9 \u4e2d \U0001f600",
              "unicode": "é中😀 ‮", "spaces": "  padded  "}
# Documents that are no text, and what becomes of each where text belongs (a number reads as the text JSON
# writes for it, as in every connector: see test_a_json_column_of_a_duckdb_table_is_read_value_by_value).
JSON_NOT_TEXT = {"object": ('{"text": "hi"}', "completion is an object, not text"),
                 "list": ('["hi", "there"]', "completion is a list, not text"),
                 "empty": ('""', "completion is empty"),
                 "json-null": ("null", "completion is missing")}


def _json_rows() -> list[tuple[str, datetime, str, str, str]]:
    """(id, ts, prompt, completion, label): prompt and completion as JSON text, the last prompt a chat."""
    chat = json.dumps([{"role": "user", "content": 'Say it in "quotes".'}])
    rows = [(k, T0 + timedelta(minutes=i), json.dumps(f"Prompt {k}?"), json.dumps(v, ensure_ascii=(k == "escaped")),
             "up") for i, (k, v) in enumerate(JSON_TEXTS.items())]
    rows += [(k, T0 + timedelta(hours=1, minutes=i), json.dumps(f"Prompt {k}?"), doc, "down")
             for i, (k, (doc, _)) in enumerate(JSON_NOT_TEXT.items())]
    return rows + [("number", T0 + timedelta(hours=2), chat, "42", "up")]


def _ingest_json_table(tmp_path, connector, table: str) -> tuple[dict[str, str], dict[str, str]]:
    """What lands (prompt text -> completion) and what is quarantined (id -> reason)."""
    from alignloop.config import IngestSettings, SourceSettings
    from alignloop.ingest.store import FeedbackStore

    source = SourceSettings(name="db", connector="x", options={}, shape="unpaired", mapping={"rows": {"table": table}})
    with FeedbackStore(tmp_path / "store.duckdb") as store:
        store.ingest(source, connector, settings=IngestSettings(max_bad_share=1))
        landed = dict(store.con.execute("SELECT prompt[1].content, completion FROM unpaired").fetchall())
        quarantined = dict(store.con.execute("SELECT payload->>'id', reason FROM quarantine").fetchall())
    return landed, quarantined


def _check_json_landing(landed: dict[str, str], quarantined: dict[str, str]) -> None:
    # The texts exactly, unquoted; the chat prompt read as the conversation it is.
    assert landed == {**{f"Prompt {k}?": v for k, v in JSON_TEXTS.items()}, 'Say it in "quotes".': "42"}
    assert quarantined == {k: reason for k, (_, reason) in JSON_NOT_TEXT.items()}


@pytest.mark.parametrize("json_type", ["jsonb", "json"])
def test_postgres_json_text_columns_land_their_strings_exactly_and_other_documents_are_quarantined(tmp_path, json_type):
    table = f"answers_{uuid.uuid4().hex[:8]}"
    with postgres_database() as db:
        with writable("postgres", f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{db}") as con:
            con.execute(f"CALL postgres_execute('db', 'CREATE TABLE {table} (id text, ts timestamp, "
                        f"prompt {json_type}, completion {json_type}, label text)')")
            con.executemany(f"INSERT INTO db.{table} VALUES (?, ?, ?, ?, ?)", _json_rows())
            stored = con.execute(f"SELECT completion FROM db.{table} WHERE id = 'escaped'").fetchone()[0]
        landed, quarantined = _ingest_json_table(tmp_path, _pg(db), table)
    # PostgreSQL's json keeps the text as written, escapes and all; jsonb stores the characters.
    assert stored == (json.dumps(JSON_TEXTS["escaped"]) if json_type == "json"
                      else json.dumps(JSON_TEXTS["escaped"], ensure_ascii=False))
    _check_json_landing(landed, quarantined)


@pytest.mark.parametrize("json_type", ["jsonb", "json", "answer_doc"])
def test_postgres_query_json_columns_land_their_strings_exactly_too(tmp_path, json_type):
    """DuckDB reads the columns of a SELECT in options.query as plain text, JSON ones too: their types are asked of
    the server, so a JSON string lands as itself there as from a table (answer_doc: a domain over jsonb)."""
    table = f"answers_{uuid.uuid4().hex[:8]}"
    with postgres_database() as db:
        with writable("postgres", f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{db}") as con:
            con.execute("CALL postgres_execute('db', 'CREATE DOMAIN answer_doc AS jsonb')")
            con.execute(f"CALL postgres_execute('db', 'CREATE TABLE {table} (id text, ts timestamp, "
                        f"prompt {json_type}, completion {json_type}, label text)')")
            con.executemany(f"INSERT INTO db.{table} VALUES (?, ?, ?, ?, ?)", _json_rows())
        query = f"SELECT id, ts, prompt, completion, label FROM {table} WHERE label IS NOT NULL;"
        landed, quarantined = _ingest_json_table(tmp_path, _pg(db, query=query), table)
    _check_json_landing(landed, quarantined)


def test_a_column_a_query_casts_to_text_keeps_its_quotes_where_the_json_one_beside_it_is_a_document():
    """The server's types decide, not the values: `body::text` is text, its quotes its own."""
    with postgres_database() as db:
        with writable("postgres", f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{db}") as con:
            con.execute("CALL postgres_execute('db', 'CREATE TABLE notes (id text, body jsonb)')")
            con.execute("INSERT INTO db.notes VALUES ('1', '\"quoted\"')")
        connector = _pg(db, query="SELECT id, body, body::text AS raw FROM notes")
        batch = next(iter(connector.read(Window(table="notes", cursor_column=None))))
    assert isinstance(batch.column("body").type, pa.JsonType) and batch.column("body").to_pylist() == ['"quoted"']
    assert batch.column("raw").type == pa.string() and batch.column("raw").to_pylist() == ['"quoted"']
    assert batch.column("id").type == pa.string()


def test_mariadb_json_text_columns_land_their_strings_exactly_and_other_documents_are_quarantined(tmp_path):
    table = f"answers_{uuid.uuid4().hex[:8]}"
    with mysql_database() as db:
        url = f"mysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{db}"
        with writable("mysql", url) as con:
            con.execute(f"CALL mysql_execute('db', 'CREATE TABLE {table} (id VARCHAR(20), ts DATETIME, prompt JSON, "
                        "completion JSON, label TEXT)')")
            con.executemany(f"INSERT INTO db.{table} VALUES (?, ?, ?, ?, ?)", _json_rows())
        landed, quarantined = _ingest_json_table(tmp_path, MySQLConnector(MySQLSettings(dsn=url)), table)
    _check_json_landing(landed, quarantined)


def test_a_json_column_is_told_by_its_table_and_schema_not_by_its_name():
    """A text column of the same name in another table, or in the default schema, keeps its value, quotes and
    all: only the columns the server types JSON (in a table or a view) are decoded."""
    with postgres_database() as db:
        with writable("postgres", f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{db}") as con:
            con.execute("CALL postgres_execute('db', 'CREATE SCHEMA side; CREATE TABLE side.notes (id text, body jsonb); "
                        "CREATE TABLE notes (id text, body text); CREATE VIEW side_notes AS SELECT * FROM side.notes')")
            con.execute("INSERT INTO db.side.notes VALUES ('1', '\"quoted\"')")
            con.execute("INSERT INTO db.notes VALUES ('1', '\"quoted\"')")
        connector = _pg(db)
        read = {t: next(iter(connector.read(Window(table=t, cursor_column=None)))).column("body")
                for t in ("notes", "side.notes", "side_notes")}
    assert read["notes"].type == pa.string() and read["notes"].to_pylist() == ['"quoted"']
    assert isinstance(read["side.notes"].type, pa.JsonType) and isinstance(read["side_notes"].type, pa.JsonType)
