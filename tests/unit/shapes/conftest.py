"""Helpers for log-shape tests: fixture files become DuckDB tables, ingested through the duckdb connector."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from alignloop.connectors.duckdb_file import DuckDBConnector, DuckDBSettings
from alignloop.config import IngestSettings, SourceSettings
from alignloop.ingest.store import FeedbackStore, IngestResult

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "shapes"


def fixture_rows(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


def write_table(db: Path, table: str, rows: list[dict[str, Any]], schema: pa.Schema | None = None) -> Path:
    """A DuckDB table holding exactly `rows` (column types inferred by Arrow unless a schema is given)."""
    arrow = pa.Table.from_pylist(rows, schema=schema)
    con = duckdb.connect(str(db))
    try:
        con.register("rows_in", arrow)
        con.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT * FROM rows_in')
    finally:
        con.close()
    return db


class ShapeRun:
    """Ingest one source of a given shape from a warehouse file into a store; query the results."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.store = FeedbackStore(tmp_path / "store.duckdb")

    def ingest(self, warehouse: Path, shape: str, name: str = "src", settings: IngestSettings | None = None,
               **kw: Any) -> IngestResult:
        source = SourceSettings(name=name, connector="duckdb", options={"path": str(warehouse)}, shape=shape, **kw)
        # The fixtures are mostly broken rows on purpose: no share of bad rows stops these runs.
        settings = settings or IngestSettings(max_bad_share=1.0)
        return self.store.ingest(source, DuckDBConnector(DuckDBSettings(path=warehouse)), settings=settings)

    def rows(self, sql: str, *params: Any) -> list[tuple]:
        return self.store.con.execute(sql, list(params)).fetchall()

    def reasons(self) -> dict[str, int]:
        return dict(self.store.quarantine_reasons())


@pytest.fixture
def shape_run(tmp_path: Path):
    run = ShapeRun(tmp_path)
    yield run
    run.store.close()
