"""The real PostgreSQL and MariaDB servers the tests use: a fresh database each, dropped afterwards.

A server that is down fails the test with a message saying so (CI runs them; tests never skip).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pytest

from alignloop.connectors.attached import extension_file

PG_HOST, PG_PORT = "127.0.0.1", 5432
MYSQL_HOST, MYSQL_PORT = "127.0.0.1", 3306


def _name() -> str:
    return f"alignloop_t_{uuid.uuid4().hex[:10]}"


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new database on the local PostgreSQL (user postgres, trust auth); yields its name."""
    import adbc_driver_postgresql.dbapi as pg

    name = _name()
    try:
        admin = pg.connect(f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres", autocommit=True)
    except Exception as e:
        pytest.fail(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} ({str(e).splitlines()[0]}); "
                    "start it: these tests need the real server")
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextmanager
def mysql_database() -> Iterator[str]:
    """A new database on the local MariaDB/MySQL (root, empty password); yields its name."""
    con = duckdb.connect()
    con.execute(f"INSTALL '{extension_file('mysql')}'")
    con.execute("LOAD mysql")
    name = _name()
    try:
        con.execute(f"ATTACH 'mysql://root@{MYSQL_HOST}:{MYSQL_PORT}/test' AS admin (TYPE mysql)")
    except duckdb.Error as e:
        pytest.fail(f"MariaDB/MySQL is not reachable at {MYSQL_HOST}:{MYSQL_PORT} ({str(e).splitlines()[0]}); "
                    "start it: these tests need the real server")
    try:
        con.execute(f"CALL mysql_execute('admin', 'CREATE DATABASE {name}')")
        yield name
    finally:
        con.execute(f"CALL mysql_execute('admin', 'DROP DATABASE IF EXISTS {name}')")
        con.close()


@contextmanager
def writable(kind: str, url: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection with the database at `url` attached as `db`, for seeding tables."""
    con = duckdb.connect()
    con.execute(f"INSTALL '{extension_file(kind)}'")
    con.execute(f"LOAD {kind}")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"ATTACH '{url}' AS db (TYPE {kind})")
    try:
        yield con
    finally:
        con.close()
