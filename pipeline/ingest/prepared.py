"""Landing a prepared shape (every shape but `events`): the checks see the rows its per-batch step
made, and its cursor, kept as the largest observed time, is written back in the source column's kind."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from alignloop.ingest.cursors import INTEGER, TEXT, CursorPosition
from alignloop.shapes import ResolvedInput, ShapeInput


def prepared_view(job: Any, schema: pa.Schema) -> Any:
    """The landing job of a prepared shape as seen by the checks: its columns are the landing rows'
    columns (already mapped), its timestamp is their `ts`, and only observed times are a cursor."""
    spec = job.inp.spec
    names = tuple(schema.names)
    view = ShapeInput(name=spec.name, default_table=spec.default_table, raw_table=spec.raw_table, key=spec.key,
                      cursor="ts", columns=names, text_columns=spec.text_columns, json_columns=spec.json_columns,
                      user_columns=spec.user_columns)
    inp = ResolvedInput(view, job.inp.table, {c: c for c in names})
    return replace(job, inp=inp, cursor_column="ts" if job.cursor_column is not None else None)


def as_source_position(position: CursorPosition | None, kind: str, raw: pa.RecordBatch, column: str | None
                       ) -> CursorPosition | None:
    """A prepared shape's cursor (the largest observed UTC time) in the form its source column compares with."""
    if position is None or column is None:
        return None
    high = datetime.fromisoformat(position.value)
    if kind == INTEGER:  # epoch seconds, as the shapes read integer times
        return CursorPosition(str(int(high.replace(tzinfo=UTC).timestamp())), kind)
    if kind == TEXT:  # written with the separator the source uses, so text bounds compare as times do
        sample = next((v for v in raw.column(column).to_pylist() if v is not None), "")
        return CursorPosition(high.isoformat(sep="T" if "T" in str(sample) else " "), kind)
    return CursorPosition(position.value, kind)
