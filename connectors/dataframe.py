"""Serve in-memory data as a connector: Polars or pandas frames, Arrow tables, or callables yielding Arrow batches.

This is the connector behind `alignloop.ingest.frame.ingest_frame`: a data engineer who extracts in Python
hands over the data, and the core lands it through the same path as any other connector (same
windows, keys, cursors, quarantine). A `dataframe` source read from the config alone has no data,
so it reads no rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from alignloop.connectors.arrow_window import read_window
from alignloop.connectors.base import ConnectorTerminalError, Window


class DataFrameSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(50_000, ge=1, description="Rows per Arrow record batch.")
    # Given in Python (alignloop.ingest.frame.ingest_frame), never in YAML; kept out of reprs and dumps.
    tables: dict[str, Any] = Field(
        default={}, exclude=True, repr=False,
        description="Python only (alignloop.ingest_frame): data per table name, as frames, Arrow tables or callables.",
    )


def as_batch_reader(data: Any, what: str = "data") -> pa.RecordBatchReader | None:
    """An Arrow stream over a Polars/pandas frame, an Arrow table or batch, or a callable yielding batches.

    A callable is called anew each time, so reading the same window twice gives the same rows; one
    that yields nothing gives None.
    """
    if callable(data) and not hasattr(data, "__arrow_c_stream__"):
        produced = data()
        if isinstance(produced, (pa.Table, pa.RecordBatch, pa.RecordBatchReader)) or hasattr(produced, "to_arrow"):
            return as_batch_reader(produced, what)
        return _reader_from_batches(produced, what)
    if isinstance(data, pa.RecordBatchReader):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.RecordBatchReader.from_batches(data.schema, [data])
    if isinstance(data, pa.Table):
        return pa.RecordBatchReader.from_batches(data.schema, data.to_batches())
    module = type(data).__module__.split(".")[0]
    if module == "polars":
        return as_batch_reader(data.to_arrow(), what)
    if module == "pandas":
        return as_batch_reader(pa.Table.from_pandas(data, preserve_index=False), what)
    raise ConnectorTerminalError(
        f"dataframe: {what} is a {type(data).__name__}; pass a Polars or pandas DataFrame, a pyarrow Table, "
        f"or a callable that yields pyarrow RecordBatches"
    )


def _reader_from_batches(produced: Any, what: str) -> pa.RecordBatchReader | None:
    """Stream a callable's batches without holding them all; the first batch fixes the schema.

    None when the callable yields nothing (no rows this time).
    """
    if not isinstance(produced, Iterable):
        raise ConnectorTerminalError(
            f"dataframe: the callable for {what} returned a {type(produced).__name__}; "
            f"return an iterable of pyarrow RecordBatches"
        )

    def batches() -> Iterator[pa.RecordBatch]:
        for item in produced:
            if isinstance(item, pa.Table):
                yield from item.to_batches()
            elif isinstance(item, pa.RecordBatch):
                yield item
            else:
                raise ConnectorTerminalError(
                    f"dataframe: the callable for {what} yielded a {type(item).__name__}; yield pyarrow RecordBatches"
                )

    stream = batches()
    first = next(stream, None)
    if first is None:
        return None
    schema = first.schema

    def checked() -> Iterator[pa.RecordBatch]:
        yield first
        for batch in stream:
            if batch.schema != schema:
                raise ConnectorTerminalError(
                    f"dataframe: the callable for {what} yielded batches of different schemas; yield one schema"
                )
            yield batch

    return pa.RecordBatchReader.from_batches(schema, checked())


class DataFrameConnector:
    """Reads windows of in-memory tables keyed by table name (the shape input's `table`)."""

    Settings: ClassVar[type[BaseModel]] = DataFrameSettings

    def __init__(self, settings: DataFrameSettings) -> None:
        self.settings = settings
        self.tables: dict[str, Any] = dict(settings.tables)

    def check(self) -> None:
        for name, data in self.tables.items():
            if not callable(data):
                as_batch_reader(data, f"table {name!r}")

    def read(self, window: Window) -> Iterator[pa.RecordBatch]:
        if window.table not in self.tables:
            if self.tables:
                raise ConnectorTerminalError(
                    f"dataframe: no data for table {window.table!r} (given: {', '.join(sorted(self.tables))}); "
                    f"pass it under that name or set the input's table in the mapping"
                )
            return
        reader = as_batch_reader(self.tables[window.table], f"table {window.table!r}")
        if reader is None:
            return
        yield from read_window(reader, reader.schema, window, self.settings.batch_size, f"dataframe: table {window.table!r}")
