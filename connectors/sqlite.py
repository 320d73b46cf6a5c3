"""Read feedback tables from an SQLite file through DuckDB's sqlite extension (read-only, streamed).

ADBC's SQLite driver streams too, but the DuckDB path shares its code, its window SQL and its error
handling with the PostgreSQL and MySQL connectors (connectors/attached.py). A `query` here is DuckDB
SQL over the attached file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from alignloop.connectors.attached import AttachedReader, Target
from alignloop.connectors.base import ConnectorTerminalError, Window


class SQLiteSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(description="The SQLite database file (opened read-only).")
    query: str | dict[str, str] | None = Field(
        None, description="A SELECT (DuckDB SQL over the file's tables) read instead of the mapping's table; a "
                          "mapping table->SELECT when the shape reads several tables.")
    batch_size: int = Field(50_000, ge=1, description="Rows per Arrow record batch.")
    memory_limit: str = Field("512MB", description="DuckDB memory cap while reading a window.")


class SQLiteConnector:
    """Reads a window of an SQLite table (or of a query), unsorted."""

    Settings: ClassVar[type[BaseModel]] = SQLiteSettings

    def __init__(self, settings: SQLiteSettings) -> None:
        self.settings = settings
        self._db = AttachedReader(settings, self.target, self.classify)

    def check(self) -> None:
        self._db.check()

    def read(self, window: Window) -> Iterator[pa.RecordBatch]:
        return self._db.read(window)

    def count(self, window: Window) -> int:
        """Rows in the window, counted where they live."""
        return self._db.count(window)

    def classify(self, message: str) -> tuple[bool, str] | None:
        low = message.lower()
        if "not a database" in low or "file is encrypted" in low:
            return False, "options.path must be an SQLite database file"
        if "database is locked" in low or "busy" in low:
            return True, "another process holds a lock; it is retried"
        return None

    def target(self) -> Target:
        path = self.settings.path
        if not path.is_file():
            raise ConnectorTerminalError(f"sqlite: file {path} does not exist; set options.path to the database file")
        with path.open("rb") as f:
            if f.read(16) != b"SQLite format 3\x00" and path.stat().st_size > 0:
                raise ConnectorTerminalError(
                    f"sqlite: {path.name} is not an SQLite database file; for JSONL, JSON, CSV or Parquet files use "
                    f"`connector: files` with options.path")
        return Target("sqlite", str(path), path.name, ())
