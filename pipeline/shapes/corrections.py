"""The `corrections` shape: a human-edited answer beside the original it replaced. The edit is
preferred over the original. Rows land beside `preference` rows (same landing table and checks,
told apart by source), with `corrected` as the chosen and `original` as the rejected answer.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from alignloop.shapes.base import LogShape, ResolvedInput, ShapeInput
from alignloop.shapes.preference import PREFERENCE, landing_rows


def prepare(inp: ResolvedInput, values: dict[str, list[Any]], n: int) -> pa.RecordBatch:
    # user_id is the editor: the person whose judgement the correction is.
    return landing_rows(values, n, "corrected", "original")


CORRECTIONS = LogShape(
    name="corrections",
    raw_tables_sql=PREFERENCE.raw_tables_sql,
    classify_sql=PREFERENCE.classify_sql,
    inputs=(
        ShapeInput(
            name="rows", default_table="corrections", raw_table="raw_preference", key="id", cursor="ts",
            columns=("id", "ts", "user_id", "model_version", "prompt", "original", "corrected"),
            optional=("id", "ts", "user_id", "model_version"),
            text_columns=("prompt", "chosen", "rejected"), json_columns=("prompt",),  # it lands in raw_preference
        ),
    ),
    prepare=prepare,
    doc="prompt + original answer + corrected answer (preferred); optional id, ts, user_id (the editor)",
)
