"""The `unpaired` shape: one row per rated answer, a prompt, a completion and a thumbs label.

Labels come in many spellings (bool, 0/1, up/down, 👍/👎, "+1"/"-1", thumbs_up/down, ...); anything
else is quarantined with the value it had, never guessed.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from pipeline.shapes.base import (
    LogShape,
    ResolvedInput,
    ShapeInput,
    answer_problem,
    as_conversation,
    as_text,
    batch,
    column,
    conversation_problem,
    first_problem,
    keys,
    timestamps,
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
    prompt = [as_conversation(v) for v in values["prompt"]]
    completion = [as_text(v) for v in values["completion"]]
    labels = [parse_label(v) for v in values["label"]]
    ts, observed, ts_problem = timestamps(values, n)
    raw_labels = [as_text(v) if not isinstance(v, str) else v for v in values["label"]]
    key, key_problem = keys(values, n, prompt, completion, raw_labels, column(values, "user_id", n),
                            [str(v) for v in column(values, "ts", n)])
    problems = [
        first_problem(kp, tp, conversation_problem(p, raw=rp), answer_problem(c, "completion"), lp)
        for kp, tp, p, rp, c, (_, lp) in zip(key_problem, ts_problem, prompt, values["prompt"], completion, labels,
                                             strict=True)
    ]
    return batch({
        "id": key, "ts": ts, "ts_observed": observed,
        "user_id": [as_text(v) for v in column(values, "user_id", n)],
        "model_version": [as_text(v) for v in column(values, "model_version", n)],
        "prompt": prompt, "completion": completion, "label": [label for label, _ in labels],
        "label_raw": raw_labels, "prep_problem": problems,
    }, LANDING)


UNPAIRED = LogShape(
    name="unpaired",
    inputs=(
        ShapeInput(
            name="rows", default_table="unpaired", raw_table="raw_unpaired", key="id", cursor="ts",
            columns=("id", "ts", "user_id", "model_version", "prompt", "completion", "label"),
            optional=("id", "ts", "user_id", "model_version"),
            text_columns=("prompt", "completion"),
        ),
    ),
    prepare=prepare,
    doc="prompt + completion + label (thumbs in any usual spelling); optional id, ts, user_id, model_version",
)
