"""The `preference` shape: one row per judgement, a prompt with a chosen and a rejected answer.

The prompt is plain text (one user turn) or a messages list; the answers are text or chat messages (an
assistant turn, or the whole conversation: see shapes.base.read_answers). Without an `id` column the key is a
hash of the content; without a `ts` column the row's time is its load time (kept as unobserved).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from alignloop.shapes.base import (
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
    read_answers,
    timestamps,
)

LANDING = pa.schema([
    ("id", pa.string()), ("ts", pa.timestamp("us")), ("ts_observed", pa.bool_()), ("user_id", pa.string()),
    ("annotator", pa.string()), ("model_version", pa.string()), ("prompt", pa.string()),
    ("chosen", pa.string()), ("rejected", pa.string()), ("prep_problem", pa.string()),
])


def prepare(inp: ResolvedInput, values: dict[str, list[Any]], n: int) -> pa.RecordBatch:
    return landing_rows(values, n, "chosen", "rejected")


def landing_rows(values: dict[str, list[Any]], n: int, better: str, worse: str) -> pa.RecordBatch:
    """Landing rows for a prompt with a preferred (`better` column) and another (`worse`) answer;
    problems name the columns as the source's shape calls them."""
    read = [read_answers(as_conversation(p), [c, r], (better, worse))
            for p, c, r in zip(values["prompt"], values[better], values[worse], strict=True)]
    prompt = [p for p, _, _ in read]
    chosen = [c for _, (c, _), _ in read]
    rejected = [r for _, (_, r), _ in read]
    ts, observed, ts_problem = timestamps(values, n)
    # Without ids, the same judgement by two people (or at two times) stays two rows.
    key, key_problem = keys(values, n, prompt, chosen, rejected, column(values, "user_id", n),
                            column(values, "annotator", n), [str(v) for v in column(values, "ts", n)])
    problems = [
        first_problem(kp, tp, conversation_problem(p, raw=rp), ap, answer_problem(c, better), answer_problem(r, worse),
                      f"{better} and {worse} are identical" if c is not None and c == r else None)
        for kp, tp, p, rp, c, r, (_, _, ap) in zip(key_problem, ts_problem, prompt, values["prompt"], chosen, rejected,
                                                   read, strict=True)
    ]
    return batch({
        "id": key, "ts": ts, "ts_observed": observed,
        "user_id": [as_text(v) for v in column(values, "user_id", n)],
        "annotator": [as_text(v) for v in column(values, "annotator", n)],
        "model_version": [as_text(v) for v in column(values, "model_version", n)],
        "prompt": prompt, "chosen": chosen, "rejected": rejected, "prep_problem": problems,
    }, LANDING)


PREFERENCE = LogShape(
    name="preference",
    inputs=(
        ShapeInput(
            name="rows", default_table="preference", raw_table="raw_preference", key="id", cursor="ts",
            columns=("id", "ts", "user_id", "annotator", "model_version", "prompt", "chosen", "rejected"),
            optional=("id", "ts", "user_id", "annotator", "model_version"),
            text_columns=("prompt", "chosen", "rejected"), json_columns=("prompt",),
            user_columns=("user_id", "annotator"),
        ),
    ),
    prepare=prepare,
    doc="prompt (text or messages) + chosen + rejected; optional id, ts, user_id, annotator, model_version",
)
