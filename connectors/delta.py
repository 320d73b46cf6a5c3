"""Read feedback from a Delta Lake table (the deltalake package; no Spark, no JVM).

`path` is the table's folder (local, or an object-store URL the deltalake package understands); a
`{table}` in it is replaced by the table a shape input reads. Windows on the cursor column are
pushed down into the table's Parquet scan and come back as bounded Arrow batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from alignloop.connectors.arrow_window import read_window
from alignloop.connectors.base import ConnectorTerminalError, ConnectorTransientError, Window


class DeltaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="The Delta table's folder; '{table}' is replaced by the input's table.")
    version: int | None = Field(None, ge=0, description="Read this table version (time travel); default the latest.")
    batch_size: int = Field(50_000, ge=1, description="Rows per Arrow record batch.")


def _deltalake() -> Any:
    try:
        import deltalake
    except ImportError:
        raise ConnectorTerminalError(
            "delta: the deltalake package is not installed; pip install 'alignloop[lakehouse]'"
        ) from None
    return deltalake


class DeltaConnector:
    """Reads a window of a Delta table, read-only."""

    Settings: ClassVar[type[BaseModel]] = DeltaSettings

    def __init__(self, settings: DeltaSettings) -> None:
        self.settings = settings

    def _table(self, table: str | None) -> Any:
        deltalake = _deltalake()
        path = self.settings.path.replace("{table}", table) if table is not None else self.settings.path
        if "{table}" in path:
            return None  # check() without a table: nothing to open yet
        try:
            return deltalake.DeltaTable(path, version=self.settings.version)
        except deltalake.exceptions.TableNotFoundError:
            raise ConnectorTerminalError(
                f"delta: {path} is not a Delta table (no _delta_log found); set options.path to the table's folder"
            ) from None
        except OSError as e:
            raise ConnectorTransientError(f"delta: cannot open {path}: {str(e).splitlines()[0]}") from None
        except deltalake.exceptions.DeltaError as e:
            raise ConnectorTerminalError(f"delta: cannot open {path}: {str(e).splitlines()[0]}") from None

    def check(self) -> None:
        self._table(None)

    def read(self, window: Window) -> Iterator[pa.RecordBatch]:
        table = self._table(window.table)
        dataset = table.to_pyarrow_dataset()
        yield from read_window(dataset, dataset.schema, window, self.settings.batch_size, f"delta: table {window.table!r}")
