"""Read feedback from an Apache Iceberg table through a pyiceberg catalog (e.g. a SQL catalog on SQLite).

A shape input's `table` is the Iceberg identifier (`namespace.table`). The cursor window is pushed
into the Iceberg scan (only data files that can hold rows in the window are read) and the rows come
back as bounded Arrow batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from alignloop.connectors.arrow_window import check_columns, read_window
from alignloop.connectors.base import ConnectorTerminalError, ConnectorTransientError, Window


class IcebergSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    catalog_uri: SecretStr = Field(
        description="The SQL catalog's database URL, e.g. sqlite:////data/catalog.db; write a password as ${ENV_VAR}."
    )
    warehouse: str | None = Field(None, description="Where the catalog keeps table files (e.g. file:///data/warehouse).")
    catalog_name: str = Field("default", description="The catalog's name inside its database.")
    batch_size: int = Field(50_000, ge=1, description="Rows per Arrow record batch.")


def _pyiceberg() -> Any:
    try:
        from pyiceberg.catalog.sql import SqlCatalog
    except ImportError:
        raise ConnectorTerminalError(
            "iceberg: the pyiceberg package is not installed; pip install 'alignloop[lakehouse]'"
        ) from None
    return SqlCatalog


class IcebergConnector:
    """Reads a window of an Iceberg table, read-only."""

    Settings: ClassVar[type[BaseModel]] = IcebergSettings

    def __init__(self, settings: IcebergSettings) -> None:
        self.settings = settings

    def _catalog(self) -> Any:
        sql_catalog = _pyiceberg()
        # Read-only: never create the catalog's own tables in a database that lacks them.
        props = {"uri": self.settings.catalog_uri.get_secret_value(), "init_catalog_tables": "false"}
        if self.settings.warehouse:
            props["warehouse"] = self.settings.warehouse
        try:
            return sql_catalog(self.settings.catalog_name, **props)
        except Exception as e:  # sqlalchemy's errors carry the URL; say what failed without it
            raise _catalog_error(e, props["uri"]) from None

    def check(self) -> None:
        catalog = self._catalog()
        try:
            catalog.list_namespaces()
        except Exception as e:  # the database opened but holds no catalog, or cannot be read
            raise _catalog_error(e, self.settings.catalog_uri.get_secret_value()) from None

    def read(self, window: Window) -> Iterator[pa.RecordBatch]:
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError
        from pyiceberg.expressions import AlwaysTrue, And, GreaterThanOrEqual, LessThan

        catalog = self._catalog()
        try:
            table = catalog.load_table(window.table)
        except (NoSuchTableError, NoSuchNamespaceError, ValueError):
            raise ConnectorTerminalError(
                f"iceberg: no table {window.table!r} in catalog {self.settings.catalog_name!r}; "
                f"set the input's table to 'namespace.table'"
            ) from None
        except Exception as e:  # the catalog database itself failed (sqlalchemy errors)
            raise _catalog_error(e, self.settings.catalog_uri.get_secret_value()) from None
        present = [f.name for f in table.schema().fields]
        check_columns(f"iceberg: table {window.table!r}", present, window)
        # Pushed down so whole data files outside the window are skipped; read_window filters exactly.
        row_filter: Any = AlwaysTrue()
        if window.start is not None:
            row_filter = And(row_filter, GreaterThanOrEqual(window.cursor_column, window.start.isoformat()))
        if window.end is not None:
            row_filter = And(row_filter, LessThan(window.cursor_column, window.end.isoformat()))
        # The cursor is read even when not asked for: the window is ordered by it.
        cursor = (window.cursor_column,) if window.cursor_column else ()
        fields = tuple(dict.fromkeys((*window.columns, *cursor))) if window.columns else ("*",)
        reader = table.scan(row_filter=row_filter, selected_fields=fields).to_arrow_batch_reader()
        yield from read_window(reader, reader.schema, window, self.settings.batch_size, f"iceberg: table {window.table!r}")


_TRANSIENT = ("connection refused", "could not connect", "timed out", "timeout", "temporarily", "too many connections")


def _catalog_error(e: Exception, uri: str) -> Exception:
    """One line for a catalog that cannot be opened, with no part of its URI (it may hold a password)."""
    reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    for secret in {uri, urlsplit(uri).password or uri}:
        reason = reason.replace(secret, "***")
    if any(marker in reason.lower() for marker in _TRANSIENT):
        return ConnectorTransientError(f"iceberg: cannot reach the catalog database ({reason}); check options.catalog_uri")
    return ConnectorTerminalError(
        f"iceberg: cannot open the catalog ({reason}); check options.catalog_uri and options.warehouse"
    )
