"""The `langfuse` shape: Langfuse traces, observations and scores as its exports write them.

Column names follow Langfuse's blob-storage export (snake_case: traces `id, timestamp, input,
output, user_id, version`; observations `id, trace_id, start_time, input, output,
provided_model_name`; scores `id, timestamp, trace_id, observation_id, name, value, string_value,
data_type, author_user_id`); map camelCase API exports (traceId, dataType, ...) per column. A score
on an observation rates that observation's input and output; a score on a trace rates the trace's.
BOOLEAN scores are 1 (up) or 0 (down), CATEGORICAL ones a thumbs spelling, NUMERIC ones are compared
with the thresholds. Each score becomes one thumb or a quarantine row with the reason; a score
whose trace or observation has not arrived yet waits (pending), and so does a trace no score names
yet: past ingest.pending_timeout it is quarantined ("trace without score after N days").
"""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from alignloop.shapes.base import (
    LogShape,
    ResolvedInput,
    ShapeInput,
    as_conversation,
    as_id,
    as_text,
    batch,
    column,
    conversation_problem,
    first_problem,
    keys,
    timestamps,
)
from alignloop.shapes.unpaired import parse_label


class LangfuseOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    score_names: tuple[str, ...] = Field((), description="Score names that are feedback (empty: every score).")
    down_threshold: float = Field(0.0, description="NUMERIC scores at or below this are thumbs-down.")
    up_threshold: float = Field(1.0, description="NUMERIC scores at or above this are thumbs-up.")

    @field_validator("up_threshold")
    @classmethod
    def _up_above_down(cls, v: float, info: ValidationInfo) -> float:
        down = info.data.get("down_threshold")
        if down is not None and v <= down:
            raise ValueError(f"must be above down_threshold ({down})")
        return v


TARGET = pa.schema([
    ("id", pa.string()), ("trace_id", pa.string()), ("ts", pa.timestamp("us")), ("ts_observed", pa.bool_()),
    ("user_id", pa.string()), ("model_version", pa.string()), ("prompt", pa.string()), ("completion", pa.string()),
    ("input_raw", pa.string()), ("output_raw", pa.string()), ("target_problem", pa.string()),
])
SCORE = pa.schema([
    ("id", pa.string()), ("ts", pa.timestamp("us")), ("ts_observed", pa.bool_()), ("trace_id", pa.string()),
    ("observation_id", pa.string()), ("name", pa.string()), ("value_raw", pa.string()), ("data_type", pa.string()),
    ("author_user_id", pa.string()), ("label", pa.bool_()), ("prep_problem", pa.string()),
])


def _json(value: Any) -> Any:
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def langfuse_prompt(value: Any) -> str | None:
    """A trace or observation input as a conversation: text, a messages list, or an object holding
    one of them (`messages`, or `input`/`prompt`/`query`/`question` text)."""
    value = _json(value)
    if isinstance(value, dict):
        if isinstance(value.get("messages"), list):
            return as_conversation(value["messages"])
        for key in ("input", "prompt", "query", "question", "content"):
            if isinstance(value.get(key), (str, list)):
                return as_conversation(value[key])
        return None
    return as_conversation(value)


def langfuse_completion(value: Any) -> str | None:
    """A trace or observation output as the answer text: text, a chat message ({role, content}), an
    object with `output`/`completion`/`text`/`answer`, or OpenAI-style `choices[0].message.content`."""
    value = _json(value)
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        value = value[-1]
    if isinstance(value, dict):
        choices = value.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            value = choices[0].get("message") or choices[0]
        for key in ("content", "output", "completion", "text", "answer"):
            if isinstance(value.get(key), str):
                return value[key]
    return None


def _targets(values: dict[str, list[Any]], n: int, trace_ids: list[Any], ts_column: str,
             model_column: str) -> pa.RecordBatch:
    ts, observed, ts_problem = timestamps(values, n, ts_column)
    prompts = [langfuse_prompt(v) for v in values["input"]]
    completions = [langfuse_completion(v) for v in values["output"]]
    ids, id_problem = keys(values, n, [as_text(v) for v in values["input"]], [as_text(v) for v in values["output"]])
    problems = []
    for raw_in, raw_out, p, c, tp, ip in zip(values["input"], values["output"], prompts, completions, ts_problem,
                                             id_problem, strict=True):
        problems.append(first_problem(
            ip, tp,
            "input is missing" if raw_in is None else
            ("input is not text or a messages list" if p is None else conversation_problem(p, "input")),
            "output is missing" if raw_out is None else
            ("output has no answer text" if c is None else ("output is empty" if not c.strip() else None)),
        ))
    return batch({
        "id": ids, "trace_id": [as_id(v) for v in trace_ids], "ts": ts,
        "ts_observed": observed, "user_id": [as_text(v) for v in column(values, "user_id", n)],
        "model_version": [as_text(v) for v in column(values, model_column, n)],
        "prompt": prompts, "completion": completions,
        "input_raw": [as_text(v) for v in values["input"]], "output_raw": [as_text(v) for v in values["output"]],
        "target_problem": problems,
    }, TARGET)


def score_label(data_type: Any, value: Any, string_value: Any, options: LangfuseOptions) -> tuple[bool | None, str | None]:
    kind = (data_type or "NUMERIC").upper()
    if kind == "CATEGORICAL":
        label, problem = parse_label(string_value)
        return label, problem and f"categorical score {string_value!r} is not a thumbs value"
    if kind == "BOOLEAN":
        if value in (0, 1) and not isinstance(value, str):
            return value == 1, None
        label, problem = parse_label(string_value if string_value is not None else value)
        return label, problem and f"boolean score value {value!r} is not 1 or 0"
    if kind != "NUMERIC":
        return None, f"data_type {data_type!r} is not NUMERIC, BOOLEAN or CATEGORICAL"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None, f"numeric score value {value!r} is not a number"
    if not math.isfinite(number):
        return None, f"numeric score value {value!r} is not a finite number"
    if number >= options.up_threshold:
        return True, None
    if number <= options.down_threshold:
        return False, None
    return None, (f"score value {number:g} is between shape_options.down_threshold ({options.down_threshold:g}) "
                  f"and up_threshold ({options.up_threshold:g})")


def prepare(inp: ResolvedInput, values: dict[str, list[Any]], n: int) -> pa.RecordBatch:
    if inp.spec.name == "traces":
        return _targets(values, n, values["id"], "timestamp", "version")
    if inp.spec.name == "observations":
        return _targets(values, n, values["trace_id"], "start_time", "provided_model_name")
    options: LangfuseOptions = inp.options  # type: ignore[assignment]
    ts, observed, ts_problem = timestamps(values, n, "timestamp")
    names = [as_text(v) for v in values["name"]]
    values_raw = column(values, "value", n)
    strings = column(values, "string_value", n)
    types = column(values, "data_type", n)
    key, key_problem = keys(values, n, column(values, "trace_id", n), names, [str(v) for v in values_raw])
    labels, problems = [], []
    for i in range(n):
        label, problem = score_label(types[i], values_raw[i], strings[i], options)
        if options.score_names and names[i] not in options.score_names:
            label, problem = None, f"score name {names[i]!r} is not one of shape_options.score_names"
        labels.append(label)
        problems.append(first_problem(key_problem[i], ts_problem[i],
                                      "trace_id is missing" if values["trace_id"][i] is None else None, problem))
    return batch({
        "id": key, "ts": ts, "ts_observed": observed, "trace_id": [as_id(v) for v in values["trace_id"]],
        "observation_id": [as_id(v) for v in column(values, "observation_id", n)], "name": names,
        "value_raw": [as_text(s) if s is not None else as_text(v) for v, s in zip(values_raw, strings, strict=True)],
        "data_type": [as_text(v) for v in types],
        "author_user_id": [as_text(v) for v in column(values, "author_user_id", n)],
        "label": labels, "prep_problem": problems,
    }, SCORE)


LANGFUSE = LogShape(
    name="langfuse",
    dependents_sql="shapes/langfuse_dependents.sql",
    unanswered_sql="shapes/langfuse_unanswered.sql",
    inputs=(
        # Traces and observations land first so that scores read in the same run find them.
        ShapeInput(
            name="traces", default_table="traces", raw_table="raw_langfuse_traces", key="id", cursor="timestamp",
            columns=("id", "timestamp", "user_id", "version", "input", "output"),
            optional=("timestamp", "user_id", "version"),
            text_columns=("prompt", "completion", "input_raw", "output_raw"),
            json_columns=("prompt", "input_raw", "output_raw"),
        ),
        ShapeInput(
            name="observations", default_table="observations", raw_table="raw_langfuse_observations", key="id",
            cursor="start_time",
            columns=("id", "trace_id", "start_time", "provided_model_name", "input", "output"),
            optional=("start_time", "provided_model_name"),
            text_columns=("prompt", "completion", "input_raw", "output_raw"),
            json_columns=("prompt", "input_raw", "output_raw"),
        ),
        ShapeInput(
            name="scores", default_table="scores", raw_table="raw_langfuse_scores", key="id", cursor="timestamp",
            columns=("id", "timestamp", "trace_id", "observation_id", "name", "value", "string_value", "data_type",
                     "author_user_id"),
            optional=("id", "timestamp", "observation_id", "string_value", "data_type", "author_user_id"),
            user_columns=("author_user_id",),
        ),
    ),
    prepare=prepare,
    options=LangfuseOptions,
    pending_input="scores", awaits="trace or observation",
    doc="Langfuse export: traces + observations + scores (name, value, data_type) joined by trace/observation id",
)
