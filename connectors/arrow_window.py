"""Cut a window out of Arrow data: the shared reading step of the dataframe, delta and iceberg connectors.

DuckDB scans the Arrow stream or dataset (pushing the cursor filter and column list into a dataset
scan), orders by the cursor and hands back bounded record batches, spilling to disk rather than
holding a large table in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa

from alignloop.connectors.base import ConnectorTerminalError, Window, quote_identifier, window_bounds


def check_columns(name: str, present: list[str], window: Window) -> None:
    """A ConnectorTerminalError naming the first window column (or the cursor) the data lacks."""
    for column in (*window.columns, *([window.cursor_column] if window.cursor_column else [])):
        if column not in present:
            raise ConnectorTerminalError(
                f"{name} has no column {column!r} (columns: {', '.join(present)}); "
                f"check the column names in the source's mapping"
            )


def read_window(data: Any, schema: pa.Schema, window: Window, batch_size: int, name: str) -> Iterator[pa.RecordBatch]:
    """Rows of `data` (a RecordBatchReader or a pyarrow dataset) in the window (unsorted)."""
    check_columns(name, schema.names, window)
    where, params = window_bounds(window)
    cols = ", ".join(quote_identifier(c) for c in window.columns) if window.columns else "*"
    con = duckdb.connect(config={"threads": 1})
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("window_source", data)
        try:
            sql = f"SELECT {cols} FROM window_source WHERE {where}"  # unsorted: see Connector.read
            yield from con.execute(sql, params).to_arrow_reader(batch_size)
        except duckdb.Error as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ConnectorTerminalError(
                f"{name}: cannot read the window on {window.cursor_column!r} ({first}); "
                f"check that the cursor column holds timestamps"
            ) from None
    finally:
        con.close()
