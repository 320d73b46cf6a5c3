"""Contract provider for `snowflake`: NOT the real service (unreachable from here). DuckDB's ADBC driver
stands in behind adbc_driver_snowflake.dbapi.connect (see tests/contract/standins.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import duckdb

from alignloop.connectors.testing import ContractRow, ContractSource
from tests.contract.standins import StandInDriver


def seed_duckdb(path: Path, rows: list[ContractRow]) -> None:
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE contract_rows (id VARCHAR, ts TIMESTAMP, body VARCHAR)")
    con.executemany("INSERT INTO contract_rows VALUES (?, ?, ?)", [(r.id, r.ts, r.body) for r in reversed(rows)])
    con.close()


@contextmanager
def seeded_source(tmp_path: Path, rows: list[ContractRow]) -> Iterator[ContractSource]:
    path = tmp_path / "standin.duckdb"
    seed_duckdb(path, rows)
    secret = f"pw-{uuid.uuid4().hex}"
    driver = StandInDriver(str(path), "password", secret)
    options = {"account": "acme-prod", "user": "loader", "database": "FEEDBACK", "schema": "PUBLIC"}
    with mock.patch("adbc_driver_snowflake.dbapi.connect", driver.connect):
        yield ContractSource(options={**options, "password": secret}, table="contract_rows",
                             bad_options={**options, "password": f"wrong-{secret}"}, secret=secret,
                             stand_in="DuckDB's ADBC driver in place of Snowflake")
