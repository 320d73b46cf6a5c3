"""The `ratings` shape: a star rating (1-5) or a scalar score per answer.

Settings (shape_options): a score at or above `up_threshold` is a thumbs-up, at or below
`down_threshold` a thumbs-down. Every usable rated answer is also kept as observed, with its score, in
the store's `ranks` table: two rated answers to the same prompt whose scores differ by at least
`pair_margin` give a pair (the higher chosen), derived when a snapshot is read, never stored as if
observed. Each row keeps the margin it was loaded with, so a snapshot reads the same pairs whatever
the setting later becomes. Scores missing, not numbers, or outside [min_score, max_score] when those
are set are quarantined.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from alignloop.shapes.base import (
    LogShape,
    ResolvedInput,
    ShapeInput,
    batch,
    judged_answer_columns,
)


class RatingsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_score: float | None = Field(None, description="Lowest valid score (e.g. 1 for stars); lower ones are quarantined.")
    max_score: float | None = Field(None, description="Highest valid score (e.g. 5 for stars).")
    down_threshold: float = Field(2.0, description="Scores at or below this are thumbs-down.")
    up_threshold: float = Field(4.0, description="Scores at or above this are thumbs-up.")
    pair_margin: float = Field(1.0, gt=0, description="Answers to one prompt whose scores differ this much form a pair.")

    @field_validator("max_score")
    @classmethod
    def _max_above_min(cls, v: float | None, info: ValidationInfo) -> float | None:
        low = info.data.get("min_score")
        if v is not None and low is not None and v <= low:
            raise ValueError(f"must be above min_score ({low})")
        return v

    @field_validator("up_threshold")
    @classmethod
    def _up_above_down(cls, v: float, info: ValidationInfo) -> float:
        down = info.data.get("down_threshold")
        if down is not None and v <= down:
            raise ValueError(f"must be above down_threshold ({down}); scores between them give no thumb")
        return v


LANDING = pa.schema([
    ("id", pa.string()), ("ts", pa.timestamp("us")), ("ts_observed", pa.bool_()), ("user_id", pa.string()),
    ("model_version", pa.string()), ("prompt", pa.string()), ("completion", pa.string()),
    ("score", pa.float64()), ("score_raw", pa.string()), ("prep_problem", pa.string()),
])


def parse_score(value: Any, options: RatingsOptions) -> tuple[float | None, str | None]:
    if value is None:
        return None, "score is missing"
    if isinstance(value, bool):
        return None, f"score {value!r} is not a number"
    try:
        score = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None, f"score {str(value)[:40]!r} is not a number"
    if not math.isfinite(score):
        return None, f"score {value!r} is not a finite number"
    if options.min_score is not None and score < options.min_score:
        return None, f"score {score:g} is below shape_options.min_score ({options.min_score:g})"
    if options.max_score is not None and score > options.max_score:
        return None, f"score {score:g} is above shape_options.max_score ({options.max_score:g})"
    return score, None


def prepare(inp: ResolvedInput, values: dict[str, list[Any]], n: int) -> pa.RecordBatch:
    options: RatingsOptions = inp.options  # type: ignore[assignment]
    scores = [parse_score(v, options) for v in values["score"]]
    raw = [None if v is None else str(v) for v in values["score"]]
    return batch({**judged_answer_columns(values, n, scores, raw),
                  "score": [s for s, _ in scores], "score_raw": raw}, LANDING)


RATINGS = LogShape(
    name="ratings",
    inputs=(
        ShapeInput(
            name="rows", default_table="ratings", raw_table="raw_ratings", key="id", cursor="ts",
            columns=("id", "ts", "user_id", "model_version", "prompt", "completion", "score"),
            optional=("id", "ts", "user_id", "model_version"),
            text_columns=("prompt", "completion"), json_columns=("prompt",),
        ),
    ),
    prepare=prepare,
    ranks_sql="shapes/ratings_ranks.sql",
    options=RatingsOptions,
    sql_options=("up_threshold", "down_threshold", "pair_margin"),
    doc="prompt + completion + score (stars or scalar); thresholds give thumbs, a margin gives pairs (derived)",
)
