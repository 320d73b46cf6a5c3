"""The files `alignloop connectors new NAME` writes (str.format templates; literal braces doubled).

The connector reads through a Python DB-API client (sqlite3 here, so it runs as written); a data
engineer swaps `_connect` and the error mapping for their own client and keeps the rest.
"""

CONNECTOR = '''"""Read feedback rows from {name}.

Written by `alignloop connectors new {name}`. It reads an SQLite file through Python's DB-API so it
works as written; to read your own system, replace `_connect` (and the errors it maps) with your
client's, and keep the rest: quoted identifiers, bound values, `batch_size` rows at a time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from {base} import ConnectorTerminalError, ConnectorTransientError, Window, quote_identifier


class {cls}Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(description="The database file to read.")
    batch_size: int = Field(10_000, ge=1, description="Rows per Arrow record batch.")
    # A password or token goes in a SecretStr field, set from the config as ${{ENV_NAME}}:
    # password: SecretStr | None = Field(None, description="...")


class {cls}:
    """Reads a window of a table in batches."""

    Settings: ClassVar[type[BaseModel]] = {cls}Settings

    def __init__(self, settings: {cls}Settings) -> None:
        self.settings = settings

    def _connect(self) -> Any:
        path = self.settings.path
        if not path.is_file():
            raise ConnectorTerminalError(f"{name}: {{path}} does not exist; set options.path to the database file")
        try:
            return sqlite3.connect(f"file:{{path}}?mode=ro", uri=True)
        except sqlite3.OperationalError as e:  # busy or locked: worth a retry
            raise ConnectorTransientError(f"{name}: cannot open {{path.name}}: {{e}}") from None

    def check(self) -> None:
        con = self._connect()
        try:
            con.execute("SELECT 1").fetchone()
        except sqlite3.DatabaseError as e:
            raise ConnectorTerminalError(f"{name}: {{self.settings.path.name}} is not a database: {{e}}") from None
        finally:
            con.close()

    def read(self, window: Window) -> Iterator[pa.RecordBatch]:
        columns = ", ".join(quote_identifier(c) for c in window.columns) if window.columns else "*"
        sql = f"SELECT {{columns}} FROM {{quote_identifier(window.table)}}"
        params: list[Any] = []
        if window.cursor_column:  # None: no cursor, read the whole source (the core skips landed rows)
            cursor = quote_identifier(window.cursor_column)
            where = ["1 = 1"]
            if window.start is not None:
                where.append(f"{{cursor}} >= ?")
                params.append(window.start.isoformat(sep=" "))
            if window.end is not None:
                where.append(f"{{cursor}} < ?")
                params.append(window.end.isoformat(sep=" "))
            sql += f" WHERE {{' AND '.join(where)}}"  # any order: the core needs none
        con = self._connect()
        try:
            # The table's columns and declared types. SQLite reads an unknown "column" as a string, so
            # missing columns are named here, not left to the query.
            declared = {{row[1]: str(row[2]).upper() for row in
                        con.execute(f"PRAGMA table_info({{quote_identifier(window.table)}})")}}
            if not declared:
                raise ConnectorTerminalError(
                    f"{name}: no such table {{window.table}}; check the table name in the source's mapping")
            have = list(declared)
            times = {{c for c, kind in declared.items() if kind in ("TIMESTAMP", "DATETIME")}}
            missing = [c for c in (window.cursor_column, *window.columns) if c and c not in have]
            if missing:
                raise ConnectorTerminalError(
                    f"{name}: table {{window.table}} has no column {{', '.join(missing)}} (it has {{', '.join(have)}}); "
                    f"check the column names in the source's mapping"
                )
            rows = con.execute(sql, params)
            names = [d[0] for d in rows.description]
            while chunk := rows.fetchmany(self.settings.batch_size):
                data = {{n: [r[i] for r in chunk] for i, n in enumerate(names)}}
                # SQLite keeps timestamps as text: hand TIMESTAMP/DATETIME columns over as timestamps.
                for column in times & data.keys():
                    data[column] = [None if v is None else datetime.fromisoformat(v) for v in data[column]]
                yield pa.RecordBatch.from_pydict(data)
        finally:
            con.close()
'''

PROVIDER = '''"""Contract provider for `{name}`: the contract rows in a fresh SQLite file (see tests/contract/framework.py).

Change it with the connector: seed the rows where your connector reads them, and give options that
must fail (a wrong password, or here a missing file) as bad_options.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.contract.framework import ContractRow, ContractSource


@contextmanager
def seeded_source(tmp_path: Path, rows: list[ContractRow]) -> Iterator[ContractSource]:
    path = tmp_path / "{name}.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE contract_rows (id TEXT, ts TIMESTAMP, body TEXT)")
    con.executemany("INSERT INTO contract_rows VALUES (?, ?, ?)",
                    [(r.id, r.ts.isoformat(sep=" "), r.body) for r in rows])
    con.commit()
    con.close()
    yield ContractSource(options={{"path": str(path)}}, table="contract_rows",
                         bad_options={{"path": str(tmp_path / "missing.sqlite")}})
'''

PLUGIN_PYPROJECT = '''[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "alignloop connector: {name}"
requires-python = ">=3.11"
dependencies = ["alignloop"]

[project.entry-points."alignloop.connectors"]
{name} = "alignloop_{name}.connector:{cls}"

# Lets alignloop's contract suite (pytest tests/contract) find this connector's provider.
[project.entry-points."alignloop.contract_providers"]
{name} = "alignloop_{name}.contract_provider"

[tool.setuptools]
packages = ["alignloop_{name}"]
'''
