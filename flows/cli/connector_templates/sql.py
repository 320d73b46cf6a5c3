"""`--kind sql`: a table of a SQL database, read through a Python DB-API driver (sqlite3, so it runs as written)."""

CONNECTOR = r'''"""Read feedback rows from $name: a table of a SQL database, through a Python DB-API driver.

Written by `alignloop connectors new $name --kind sql`. It reads an SQLite file with the standard
library's sqlite3, so it works as written; to read your own database, replace the three parts marked
DRIVER (connect and its errors, the table's columns, how a time is bound) with your driver's
(psycopg, oracledb, pyodbc, ...) and keep the rest: quoted identifiers, bound values, `batch_size`
rows at a time, in any order. (A database DuckDB can attach, PostgreSQL, MySQL or SQLite, needs no
new connector: use the built-in `postgres`, `mysql` or `sqlite`.)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
from $base import ConnectorTerminalError, ConnectorTransientError, Window, quote_identifier
from pydantic import BaseModel, ConfigDict, Field

PLACEHOLDER = "?"  # DRIVER: the driver's paramstyle ("%s" for psycopg, ":1" style for oracledb)


class ${cls}Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(description="The database file to read.")
    batch_size: int = Field(10_000, ge=1, description="Rows per Arrow record batch.")
    # A password or token goes in a SecretStr field, set from the config as $${ENV_NAME}:
    # password: SecretStr | None = Field(None, description="...")


class $cls:
    """Reads a window of a table in batches."""

    Settings: ClassVar[type[BaseModel]] = ${cls}Settings

    def __init__(self, settings: ${cls}Settings) -> None:
        self.settings = settings

    # DRIVER: connect, mapping what a retry can fix to ConnectorTransientError and the rest to
    # ConnectorTerminalError, with messages that hold no password.
    def _connect(self) -> Any:
        path = self.settings.path
        if not path.is_file():
            raise ConnectorTerminalError(f"$name: {path} does not exist; set options.path to the database file")
        try:
            return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except sqlite3.OperationalError as e:  # busy or locked: worth a retry
            raise ConnectorTransientError(f"$name: cannot open {path.name}: {e}") from None

    # DRIVER: the table's columns and declared types (information_schema.columns on most servers);
    # empty when there is no such table.
    def _declared(self, con: Any, table: str) -> dict[str, str]:
        return {row[1]: str(row[2]).upper() for row in con.execute(f"PRAGMA table_info({quote_identifier(table)})")}

    # DRIVER: a time as the driver binds it. SQLite keeps times as ISO text; most drivers take a datetime.
    def _bound(self, value: datetime) -> Any:
        return value.isoformat(sep=" ")

    def check(self) -> None:
        con = self._connect()
        try:
            con.execute("SELECT 1").fetchone()
        except sqlite3.DatabaseError as e:
            raise ConnectorTerminalError(f"$name: {self.settings.path.name} is not a database: {e}") from None
        finally:
            con.close()

    def _select(self, window: Window) -> tuple[str, list[Any]]:
        columns = ", ".join(quote_identifier(c) for c in window.columns) if window.columns else "*"
        sql = f"SELECT {columns} FROM {quote_identifier(window.table)}"
        params: list[Any] = []
        if window.cursor_column:  # None: no cursor, read the whole source (the core skips landed rows)
            cursor = quote_identifier(window.cursor_column)
            where = ["1 = 1"]
            if window.start is not None:
                where.append(f"{cursor} >= {PLACEHOLDER}")
                params.append(self._bound(window.start))
            if window.end is not None:
                where.append(f"{cursor} < {PLACEHOLDER}")
                params.append(self._bound(window.end))
            sql += f" WHERE {' AND '.join(where)}"  # any order: the core needs none
        return sql, params

    def read(self, window: Window) -> Iterator[pa.RecordBatch]:
        con = self._connect()
        try:
            # Missing columns are named here, not left to the query: SQLite reads an unknown "column" as a string.
            declared = self._declared(con, window.table)
            if not declared:
                raise ConnectorTerminalError(
                    f"$name: no such table {window.table}; check the table name in the source's mapping")
            missing = [c for c in (window.cursor_column, *window.columns) if c and c not in declared]
            if missing:
                raise ConnectorTerminalError(
                    f"$name: table {window.table} has no column {', '.join(missing)} (it has {', '.join(declared)}); "
                    f"check the column names in the source's mapping")
            times = {c for c, kind in declared.items() if kind in ("TIMESTAMP", "DATETIME")}
            rows = con.execute(*self._select(window))
            names = [d[0] for d in rows.description]
            while chunk := rows.fetchmany(self.settings.batch_size):
                data = {n: [r[i] for r in chunk] for i, n in enumerate(names)}
                # SQLite keeps timestamps as text: hand TIMESTAMP/DATETIME columns over as timestamps.
                for column in times & data.keys():
                    data[column] = [v if v is None or isinstance(v, datetime) else datetime.fromisoformat(v)
                                    for v in data[column]]
                yield pa.RecordBatch.from_pydict(data)
        finally:
            con.close()
'''

PROVIDER = r'''"""Contract provider for `$name`: the contract rows in a fresh SQLite file.

The promises it is checked against are alignloop.connectors.testing's. Change it with the connector:
seed the rows where your connector reads them (a fresh schema in a test database), and give options
that must fail (a wrong password, or here a missing file) as bad_options, with the secret they hold.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alignloop.connectors.testing import ContractRow, ContractSource


@contextmanager
def seeded_source(tmp_path: Path, rows: list[ContractRow]) -> Iterator[ContractSource]:
    path = tmp_path / "$name.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE contract_rows (id TEXT, ts TIMESTAMP, body TEXT)")
    con.executemany("INSERT INTO contract_rows VALUES (?, ?, ?)",
                    [(r.id, r.ts.isoformat(sep=" "), r.body) for r in rows])
    con.commit()
    con.close()
    yield ContractSource(options={"path": str(path)}, table="contract_rows",
                         bad_options={"path": str(tmp_path / "missing.sqlite")})
'''
