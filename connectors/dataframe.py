"""Serve in-memory data as a connector: Polars or pandas frames, Arrow tables, or callables yielding Arrow batches.

This is the connector behind `pipeline.ingest.ingest_frame`: a data engineer who extracts in Python
hands over the data, and the core lands it through the same path as any other connector (same
windows, keys, cursors, quarantine). A `dataframe` source read from the config alone has no data,
so it reads no rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from connectors.arrow_window import read_window
from connectors.base import ConnectorTerminalError, Window


class DataFrameSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(50_000, ge=1, description="Rows per Arrow record batch.")


def as_batch_reader(data: Any, what: str = "data") -> pa.RecordBatchReader:
    """An Arrow stream over a Polars/pandas frame, an Arrow table or batch, or a callable yielding batches.

    A callable is called anew each time, so reading the same window twice gives the same rows.
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


def _reader_from_batches(batches: Iterable[Any], what: str) -> pa.RecordBatchReader:
    """Stream a callable's batches without holding them all; the first batch fixes the schema."""
    iterator = iter(batches)
    first = next(iterator, None)
    if first is None:
        raise ConnectorTerminalError(f"dataframe: the callable for {what} yielded no batch; yield at least one")
    if isinstance(first, pa.Table):
        first = first.combine_chunks().to_batches()[0] if first.num_rows else pa.RecordBatch.from_pylist([], first.schema)
    if not isinstance(first, pa.RecordBatch):
        raise ConnectorTerminalError(
            f"dataframe: the callable for {what} yielded a {type(first).__name__}; yield pyarrow RecordBatches"
        )
    schema = first.schema

    def rest() -> Iterator[pa.RecordBatch]:
        yield first
        for batch in iterator:
            if not isinstance(batch, pa.RecordBatch) or batch.schema != schema:
                raise ConnectorTerminalError(
                    f"dataframe: the callable for {what} yielded a batch that is not a RecordBatch with the first "
                    f"batch's schema; yield batches of one schema"
                )
            yield batch

    return pa.RecordBatchReader.from_batches(schema, rest())


class DataFrameConnector:
    """Reads windows of in-memory tables keyed by table name (the shape input's `table`)."""

    Settings: ClassVar[type[BaseModel]] = DataFrameSettings

    def __init__(self, settings: DataFrameSettings, tables: Mapping[str, Any] | None = None) -> None:
        self.settings = settings
        self.tables: dict[str, Any] = dict(tables or {})

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
        yield from read_window(reader, reader.schema, window, self.settings.batch_size, f"dataframe: table {window.table!r}")
