"""What the PostgreSQL, MySQL/MariaDB and SQLite connectors share: a database attached to DuckDB, read by
the AttachedReader each of them holds.

One in-memory DuckDB per process loads the database's extension from its PyPI wheel
(duckdb-extension-<name>, no download at run time); each read attaches the database read-only
under its own name and streams
`SELECT <columns> FROM <table> WHERE <cursor> >= ? AND <cursor> < ?` as Arrow batches, unsorted
(the core needs no order). The window filter is pushed down to the server (DuckDB's scanners pass
it on) and rows stream through, so memory stays bounded whatever the table's size. Why DuckDB and
not ADBC is in connectors/postgres.py. DuckDB reads a JSON column (PostgreSQL json/jsonb, MySQL and
MariaDB JSON) as text holding the document, a string still in its quotes: the server's catalog tells
which columns those are, and they come as JSON documents (`mark_json`), decoded by the core.
"""

from __future__ import annotations

import importlib
import logging
import re
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from alignloop.connectors.base import (
    ConnectorError,
    ConnectorTerminalError,
    ConnectorTransientError,
    Window,
    mark_json,
    quote_identifier,
    window_bounds,
)

log = logging.getLogger(__name__)
_engine_lock = threading.Lock()


@cache
def extension_file(name: str) -> str:
    """The extension binary shipped by the duckdb-extension-<name> wheel."""
    try:
        module = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError:
        raise ConnectorTerminalError(
            f"{name}: the DuckDB extension is not installed; pip install duckdb-extension-{name}=={duckdb.__version__}"
        ) from None
    root = Path(module.__file__).parent
    found = sorted(root.rglob(f"v{duckdb.__version__}/{name}.duckdb_extension")) or sorted(
        root.rglob(f"{name}.duckdb_extension"))
    if not found:
        raise ConnectorTerminalError(f"{name}: no {name}.duckdb_extension in {root}; reinstall duckdb-extension-{name}")
    return str(found[0])


_loaded: set[str] = set()


@cache
def _engine() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB per process: loading an extension is slow beside a small read, so it is loaded
    once and every read works in a cursor of it, with its own uniquely named attachment."""
    con = duckdb.connect(config={"threads": 1})
    con.execute("SET temp_directory = ?", [tempfile.gettempdir()])
    return con


def _session(kind: str, memory_limit: str) -> duckdb.DuckDBPyConnection:
    engine = _engine()
    with _engine_lock:
        if kind not in _loaded:
            engine.execute(f"INSTALL {sql_literal(extension_file(kind))}")  # copies the wheel's file; no download
            engine.execute(f"LOAD {kind}")
            _loaded.add(kind)
        engine.execute("SET memory_limit = ?", [memory_limit])
    con = engine.cursor()
    con.execute("SET TimeZone = 'UTC'")
    return con


def sql_literal(text: str) -> str:
    """A string literal for the few statements DuckDB cannot bind (ATTACH takes no parameters)."""
    if "\x00" in text:
        raise ConnectorTerminalError("a connection string cannot contain a NUL character")
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Target:
    """How one connector reaches its database. `describe` and `secrets` keep messages secret-free."""

    kind: str                  # extension name: postgres | mysql | sqlite
    attach: str                # the string ATTACH takes (may hold a password)
    describe: str              # shown in messages: host, port, database, user; never a password
    secrets: tuple[str, ...]   # values that must never appear in a message
    query_function: str | None = None   # postgres_query / mysql_query: a query runs on the server
    # Catalog queries run through query_function, tried in order until one runs: each returns (schema, table,
    # column, whether the schema is the one an unqualified table name reads) of every column typed JSON.
    json_catalog: tuple[str, ...] = ()
    # For options.query: an expression in the server's dialect, with __COLUMN__ for a column of the query's result
    # (`q`), true where that column is typed JSON. Evaluated on a row of NULLs (the query joined on false: its
    # rows are never read), since DuckDB reads a query's JSON columns as plain text.
    json_result_type: str | None = None


def scrub(text: str, target: Target) -> str:
    """`text` with every secret of the target masked, as one line."""
    for secret in sorted((s for s in target.secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return " ".join(text.split())


def classify_by_words(message: str, terminal: dict[str, str], transient: dict[str, str]) -> tuple[bool, str] | None:
    """(transient, what to do) for the first phrase of `terminal`, then of `transient`, found in the message."""
    low = message.lower()
    for table, is_transient in ((terminal, False), (transient, True)):
        for words, fix in table.items():
            if words in low:
                return is_transient, fix
    return None


class AttachedReader:
    """Reads windows of a database attached to DuckDB. The PostgreSQL, MySQL/MariaDB and SQLite
    connectors each hold one (composition, not a base class: each connector is its own class with its
    own check and read) and give it how to reach their database (`target`) and how to read their
    driver's connection errors (`classify`: (transient, what to do), or None when not recognised)."""

    def __init__(self, settings: Any, target: Callable[[], Target],
                 classify: Callable[[str], tuple[bool, str] | None]) -> None:
        self.settings = settings
        self.target = target
        self.classify = classify

    # ------------------------------------------------------------------ connection
    def _open(self) -> tuple[duckdb.DuckDBPyConnection, Target]:
        target = self.target()
        self.alias = f"src_{uuid.uuid4().hex[:12]}"
        try:
            con = _session(target.kind, self.settings.memory_limit)
        except duckdb.Error as e:
            raise ConnectorTerminalError(f"{target.kind}: {str(e).splitlines()[0]}") from None
        try:
            con.execute(f"ATTACH {sql_literal(target.attach)} AS {self.alias} (TYPE {target.kind}, READ_ONLY)")
        except duckdb.Error as e:
            con.close()
            raise self._connect_error(e, target) from None
        return con, target

    def _close(self, con: duckdb.DuckDBPyConnection) -> None:
        try:
            con.execute("USE memory")
            con.execute(f"DETACH {self.alias}")
        except duckdb.Error:
            pass
        con.close()

    def _connect_error(self, error: Exception, target: Target) -> ConnectorError:
        text = scrub(str(error), target)
        # The driver's own reason is the part after the connection string it echoes back.
        reason = re.split(r"(?:FATAL|ERROR):\s+|\": ", text)[-1].strip()
        verdict = self.classify(text)
        transient, fix = verdict if verdict else (False, "check options.dsn")
        cls = ConnectorTransientError if transient else ConnectorTerminalError
        return cls(f"{target.kind}: cannot connect to {target.describe}: {reason}; {fix}")

    def check(self) -> None:
        con, _ = self._open()
        self._close(con)

    # ------------------------------------------------------------------ reading
    def _relation(self, con: duckdb.DuckDBPyConnection, target: Target, table: str) -> tuple[str, str]:
        """(FROM clause, what to call it in messages) for a window's table, or the query that replaces it."""
        query = self._query_for(table)
        if query is None:
            return f"{self.alias}.{quote_identifier(table)}", f"table {table}"
        if target.query_function:
            # The query text is bound, not spliced: it runs on the server, in the server's dialect.
            return f"{target.query_function}('{self.alias}', $query)", "options.query"
        con.execute(f"USE {self.alias}")
        view = f"query_{self.alias}"
        con.sql(query).create_view(view)  # DuckDB dialect over the attached database
        return view, "options.query"

    def _query_for(self, table: str) -> str | None:
        query = self.settings.query
        if query is None:
            return None
        if isinstance(query, dict):
            return query.get(table)
        served = getattr(self, "_query_table", None)
        if served is not None and served != table:
            raise ConnectorTerminalError(
                f"options.query is one SELECT but the source reads both {served!r} and {table!r}; give query "
                f"as a mapping of table name to SELECT, one per table the mapping names"
            )
        self._query_table = table
        return query

    def _select(self, window: Window, what: str, relation: str) -> tuple[str, dict[str, Any]]:
        # No cursor column: the source is read whole (the core skips rows already landed by key).
        where, params = window_bounds(window)
        if what == "count":
            return f"SELECT count(*) FROM {relation} WHERE {where}", params
        cols = ", ".join(quote_identifier(c) for c in window.columns) if window.columns else "*"
        return f"SELECT {cols} FROM {relation} WHERE {where}", params  # unsorted: see Connector.read

    def _run(self, con: duckdb.DuckDBPyConnection, target: Target, window: Window, what: str) -> Any:
        try:
            relation, called = self._relation(con, target, window.table)
        except duckdb.Error as e:  # a query in DuckDB SQL that does not parse or bind
            raise ConnectorTerminalError(
                f"{target.kind}: options.query: {scrub(str(e).splitlines()[0], target)}; fix the SELECT") from None
        sql, params = self._select(window, what, relation)
        if "$query" in relation:
            params["query"] = self._query_for(window.table)
        try:
            return con.execute(sql, params)
        except duckdb.CatalogException:
            raise ConnectorTerminalError(
                f"{target.kind}: {target.describe}: table {window.table} does not exist (or is not visible to "
                f"this user); check the table name in the source's mapping"
            ) from None
        except duckdb.BinderException as e:
            raise self._column_error(con, relation, called, window, target, e) from None
        except duckdb.Error as e:
            raise self._read_error(e, target, called) from None

    def _column_error(self, con: Any, relation: str, called: str, window: Window, target: Target,
                      error: Exception) -> ConnectorError:
        params = {"query": self._query_for(window.table)} if "$query" in relation else {}
        try:
            have = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {relation}", params).fetchall()]
        except duckdb.Error:
            return ConnectorTerminalError(f"{target.kind}: {called}: {scrub(str(error).splitlines()[0], target)}")
        wanted = [c for c in (window.cursor_column, *window.columns) if c]
        missing = [c for c in dict.fromkeys(wanted) if c not in have]
        role = "the cursor column" if window.cursor_column and window.cursor_column in missing else "a mapped column"
        return ConnectorTerminalError(
            f"{target.kind}: {called} has no column {', '.join(repr(m) for m in missing)} ({role}; it has "
            f"{', '.join(have)}); map the source's columns to the shape's in the config, or read a view that has them"
        )

    def _read_error(self, error: Exception, target: Target, called: str) -> ConnectorError:
        text = scrub(str(error), target)
        # The server refused to prepare the SELECT: a query or a name to fix, not a broken connection.
        verdict = (False, "fix options.query or the mapping") if "failed to prepare" in text.lower() else None
        verdict = verdict or self.classify(text)
        if isinstance(error, (duckdb.IOException, duckdb.ConnectionException)) and verdict is None:
            verdict = (True, "the connection broke while reading; it is retried")
        transient, fix = verdict if verdict else (False, "check the source's options and mapping")
        first = text.split("LINE 1:")[0].strip()
        cls = ConnectorTransientError if transient else ConnectorTerminalError
        return cls(f"{target.kind}: {called}: {first}; {fix}")

    def read(self, window: Window) -> Iterator[pa.RecordBatch]:
        con, target = self._open()
        try:
            query = self._query_for(window.table)
            json_columns = self._json_columns(con, target, window.table) if query is None else set()
            result = self._run(con, target, window, "rows")
            if query is not None:
                json_columns = self._query_json_columns(con, target, query, [d[0] for d in result.description])
            marked = [d[0] for d in result.description if d[0].lower() in json_columns]
            try:
                for batch in result.to_arrow_reader(self.settings.batch_size):
                    yield mark_json(batch, marked) if marked else batch
            except duckdb.Error as e:
                raise self._read_error(e, target, f"table {window.table}") from None
        finally:
            self._close(con)

    def _query_json_columns(self, con: duckdb.DuckDBPyConnection, target: Target, query: str,
                            columns: list[str]) -> set[str]:
        """The columns of options.query's result that the server types JSON (lower case), where it can say so
        without running the query (PostgreSQL); elsewhere none, and a JSON string keeps its quotes (documented:
        unwrap it in the SELECT)."""
        if not target.json_result_type or not target.query_function or not columns:
            return set()
        tests = ", ".join(target.json_result_type.replace("__COLUMN__", 'q."' + c.replace('"', '""') + '"') + f" AS c{i}"
                          for i, c in enumerate(columns))
        body = query.strip().rstrip(";").strip()
        sql = f"SELECT {tests} FROM (SELECT 1) AS one LEFT JOIN ({body}) AS q ON false"
        try:  # a cursor of its own: `con` holds the rows being read
            row = con.cursor().execute(f"SELECT * FROM {target.query_function}('{self.alias}', $sql)",
                                       {"sql": sql}).fetchone()
        except duckdb.Error as e:
            log.warning("%s: options.query: the types of its columns could not be read (%s); a JSON column's "
                        "strings keep their quotes: unwrap them in the SELECT", target.kind,
                        scrub(str(e).splitlines()[0], target))
            return set()
        return {c.lower() for c, is_json in zip(columns, row or (), strict=False) if is_json}

    def _json_columns(self, con: duckdb.DuckDBPyConnection, target: Target, table: str) -> set[str]:
        """The table's columns the server types JSON (lower case). DuckDB reads them as text holding the JSON
        document, a string still in its quotes; marked as JSON documents (`mark_json`), the core decodes each
        value: a string lands as itself, a value that is no text where text belongs is quarantined. The
        columns of a SELECT in options.query are typed by `_query_json_columns` instead."""
        if not target.json_catalog:
            return set()
        *schema, name = table.split(".")
        params = {"table": name, "schema": schema[-1] if schema else None}
        error: duckdb.Error | None = None
        for catalog in target.json_catalog:  # the first that runs on this server (MySQL or MariaDB)
            params["catalog"] = catalog
            try:
                rows = con.execute(
                    f"SELECT DISTINCT lower(c.column_name) FROM {target.query_function}('{self.alias}', $catalog) "
                    "AS c(table_schema, table_name, column_name, in_default_schema) "
                    "WHERE lower(c.table_name) = lower($table) AND CASE WHEN $schema IS NULL "
                    "THEN c.in_default_schema::BOOLEAN ELSE lower(c.table_schema) = lower($schema) END",
                    params).fetchall()
            except duckdb.Error as e:
                error = error or e
                continue
            return {r[0] for r in rows}
        raise self._read_error(error, target, f"the column types of table {table}") from None

    def count(self, window: Window) -> int:
        """Rows in the window, counted where they live."""
        con, target = self._open()
        try:
            return int(self._run(con, target, window, "count").fetchone()[0])
        finally:
            self._close(con)
