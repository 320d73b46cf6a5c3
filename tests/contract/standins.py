"""A local ADBC driver standing in for a warehouse that cannot be reached from here (Snowflake, BigQuery).

It is DuckDB's own ADBC driver over a seeded file, behind the warehouse driver's `dbapi.connect`:
it checks the secret the connector passes (refusing a wrong one the way a driver does, with the
secret echoed in its message, so the connector's scrubbing is tested), and for BigQuery translates
backtick identifiers to DuckDB's double quotes. What it cannot show: the real service's behaviour.
"""

from __future__ import annotations

from typing import Any

import adbc_driver_duckdb.dbapi as duckdb_adbc
import adbc_driver_manager


class _BacktickCursor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Any = None) -> None:
        self._cursor.execute(sql.replace("`", '"'), params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class _BacktickConnection:
    def __init__(self, con: Any) -> None:
        self._con = con

    def cursor(self) -> _BacktickCursor:
        return _BacktickCursor(self._con.cursor())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


class StandInDriver:
    """`connect(db_kwargs=...)` like the warehouse drivers; records every call's options."""

    def __init__(self, path: str, secret_key: str, secret: str, backticks: bool = False) -> None:
        self.path, self.secret_key, self.secret, self.backticks = path, secret_key, secret, backticks
        self.calls: list[dict[str, Any]] = []

    def connect(self, db_kwargs: dict[str, str] | None = None, **kwargs: Any) -> Any:
        self.calls.append(dict(db_kwargs or {}))
        given = (db_kwargs or {}).get(self.secret_key)
        if given != self.secret:
            raise adbc_driver_manager.ProgrammingError(
                f"UNAUTHENTICATED: [Warehouse] authentication failed with {self.secret_key}={given}",
                status_code=adbc_driver_manager.AdbcStatusCode.UNAUTHENTICATED)
        con = duckdb_adbc.connect(self.path)
        return _BacktickConnection(con) if self.backticks else con
