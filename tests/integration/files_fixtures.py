"""Write Arrow tables as the files a data engineer exports: JSONL/JSON, CSV and Parquet, plain or gzip."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq


def file_bytes(table: pa.Table, fmt: str) -> bytes:
    """The bytes of `table` in `fmt` (jsonl, json, csv or parquet; a '.gz' suffix gzips them)."""
    base = fmt.removesuffix(".gz")
    if base == "jsonl":
        data = "".join(json.dumps(row, default=str) + "\n" for row in table.to_pylist()).encode()
    elif base == "json":
        data = json.dumps(table.to_pylist(), default=str).encode()
    elif base == "csv":
        sink = io.BytesIO()
        pacsv.write_csv(table, sink)
        data = sink.getvalue()
    elif base == "parquet":
        sink = io.BytesIO()
        pq.write_table(table, sink)
        data = sink.getvalue()
    else:
        raise ValueError(fmt)
    return gzip.compress(data, mtime=0) if fmt.endswith(".gz") else data


def write_file(table: pa.Table, path: Path, fmt: str | None = None) -> Path:
    """Write `table` to `path`, in the format its name says unless `fmt` is given."""
    if fmt is None:
        fmt = ".".join(path.name.split(".")[1:])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(file_bytes(table, fmt))
    return path
