"""Read feedback tables from a DuckDB database file (the demo warehouse, or any DuckDB table)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import duckdb
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from alignloop.connectors.base import (
    ConnectorTerminalError,
    ConnectorTransientError,
    Window,
    json_columns,
    mark_json,
    quote_identifier,
    window_bounds,
)


class DuckDBSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(description="The DuckDB database file to read (opened read-only).")
    batch_size: int = Field(50_000, ge=1, description="Rows per Arrow record batch.")


class DuckDBConnector:
    """Reads a window of a table from a DuckDB file, read-only."""

    Settings: ClassVar[type[BaseModel]] = DuckDBSettings

    def __init__(self, settings: DuckDBSettings) -> None:
        self.settings = settings

    def _connect(self) -> duckdb.DuckDBPyConnection:
        path = self.settings.path
        if not path.is_file():
            raise ConnectorTerminalError(f"duckdb: file {path} does not exist; set options.path to the warehouse file")
        with open(path, "rb") as f:
            header = f.read(12)
        if header[8:12] != b"DUCK":  # every DuckDB file carries this magic after an 8-byte checksum
            suffix = "".join(path.suffixes) or "no extension"
            raise ConnectorTerminalError(
                f"duckdb: {path} is not a DuckDB database file ({suffix}); for JSONL, JSON, CSV or Parquet files "
                f"use `connector: files` with options.path"
            )
        try:
            return duckdb.connect(str(path), read_only=True)
        except duckdb.IOException as e:
            # Another process holding a write lock is temporary; retrying later works.
            raise ConnectorTransientError(f"duckdb: cannot open {path}: {e}") from None

    def check(self) -> None:
        self._connect().close()

    def read(self, window: Window) -> Iterator[pa.RecordBatch]:
        cols = ", ".join(quote_identifier(c) for c in window.columns) if window.columns else "*"
        where, params = window_bounds(window)
        sql = f"SELECT {cols} FROM {quote_identifier(window.table)} WHERE {where}"  # unsorted: see Connector.read
        con = self._connect()
        try:
            try:
                result = con.execute(sql, params)
                marked = json_columns(result.description)  # JSON columns: documents, decoded by the core
                reader = result.to_arrow_reader(self.settings.batch_size)
            except duckdb.CatalogException as e:
                raise ConnectorTerminalError(
                    f"duckdb: {self.settings.path.name}: {str(e).splitlines()[0]}; check the table and column "
                    f"names in the source's mapping"
                ) from None
            except duckdb.BinderException as e:
                raise ConnectorTerminalError(
                    f"duckdb: {self.settings.path.name}: {str(e).splitlines()[0]}; check the column names in "
                    f"the source's mapping"
                ) from None
            for batch in reader:
                yield mark_json(batch, marked) if marked else batch
        finally:
            con.close()
