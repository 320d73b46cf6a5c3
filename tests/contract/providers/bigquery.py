"""Contract provider for `bigquery`: NOT the real service (unreachable from here). DuckDB's ADBC driver
stands in behind adbc_driver_bigquery.dbapi.connect, backticks translated (tests/contract/standins.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from alignloop.connectors.testing import ContractRow, ContractSource
from tests.contract.providers.snowflake import seed_duckdb
from tests.contract.standins import StandInDriver


@contextmanager
def seeded_source(tmp_path: Path, rows: list[ContractRow]) -> Iterator[ContractSource]:
    path = tmp_path / "standin.duckdb"
    seed_duckdb(path, rows)
    key = f"key-{uuid.uuid4().hex}"
    credentials = json.dumps({"type": "service_account", "private_key": key})
    driver = StandInDriver(str(path), "adbc.bigquery.sql.auth_credentials", credentials, backticks=True)
    options = {"project": "acme-analytics", "dataset": "feedback"}
    with mock.patch("adbc_driver_bigquery.dbapi.connect", driver.connect):
        yield ContractSource(options={**options, "credentials": credentials}, table="contract_rows",
                             bad_options={**options, "credentials": credentials.replace(key, f"bad-{key}")},
                             secret=key, stand_in="DuckDB's ADBC driver in place of BigQuery")
