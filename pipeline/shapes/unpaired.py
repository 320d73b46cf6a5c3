"""The `unpaired` shape: one row per rated answer, a prompt, a completion and a thumbs label.

Labels come in many spellings (bool, 0/1, up/down, 👍/👎, "+1"/"-1", thumbs_up/down, ...); anything
else is quarantined with the value it had, never guessed.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from alignloop.shapes.base import (
    LogShape,
    ResolvedInput,
    ShapeInput,
    as_text,
    batch,
    judged_answer_columns,
)

UP = {"1", "true", "t", "yes", "y", "up", "thumbs_up", "thumbsup", "thumb_up", "thumbs-up", "+1", "👍",
      "positive", "good", "like", "liked", "desirable"}
DOWN = {"0", "false", "f", "no", "n", "down", "thumbs_down", "thumbsdown", "thumb_down", "thumbs-down", "-1",
        "👎", "negative", "bad", "dislike", "disliked", "undesirable"}

LANDING = pa.schema([
    ("id", pa.string()), ("ts", pa.timestamp("us")), ("ts_observed", pa.bool_()), ("user_id", pa.string()),
    ("model_version", pa.string()), ("prompt", pa.string()), ("completion", pa.string()),
    ("label", pa.bool_()), ("label_raw", pa.string()), ("prep_problem", pa.string()),
])


def parse_label(value: Any) -> tuple[bool | None, str | None]:
    """(label, problem) for one thumbs value in any of the usual spellings."""
    if value is None:
        return None, "label is missing"
    if isinstance(value, bool):
        return value, None
    if isinstance(value, (int, float)):
        if value in (1, 0, -1):
            return value == 1, None
        return None, f"label {value!r} is not a thumbs value (use true/false, 1/0, up/down, 👍/👎, +1/-1)"
    text = str(value).strip().lower().replace("\ufe0f", "")
    if text in UP:
        return True, None
    if text in DOWN:
        return False, None
    return None, f"label {str(value)[:40]!r} is not a thumbs value (use true/false, 1/0, up/down, 👍/👎, +1/-1)"


def prepare(inp: ResolvedInput, values: dict[str, list[Any]], n: int) -> pa.RecordBatch:
    labels = [parse_label(v) for v in values["label"]]
    raw_labels = [as_text(v) if not isinstance(v, str) else v for v in values["label"]]
    return batch({**judged_answer_columns(values, n, labels, raw_labels),
                  "label": [label for label, _ in labels], "label_raw": raw_labels}, LANDING)


UNPAIRED = LogShape(
    name="unpaired",
    inputs=(
        ShapeInput(
            name="rows", default_table="unpaired", raw_table="raw_unpaired", key="id", cursor="ts",
            columns=("id", "ts", "user_id", "model_version", "prompt", "completion", "label"),
            optional=("id", "ts", "user_id", "model_version"),
            text_columns=("prompt", "completion"), json_columns=("prompt",),
        ),
    ),
    prepare=prepare,
    doc="prompt + completion + label (thumbs in any usual spelling); optional id, ts, user_id, model_version",
)
