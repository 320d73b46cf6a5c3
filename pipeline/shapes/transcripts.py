"""The `transcripts` shape: two whole dialogues, chosen and rejected, in the
"\\n\\nHuman: ... \\n\\nAssistant: ..." style or as chat messages (lists of {role, content}). The
prompt is their shared history; the answers are what each side says after the last shared turn. Rows
whose sides do not share the history up to the last assistant turn, or whose final answer is empty,
are quarantined with that reason.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import pyarrow as pa

from alignloop.shapes.base import (
    LogShape,
    ResolvedInput,
    ShapeInput,
    as_text,
    batch,
    column,
    first_problem,
    keys,
    message_turns,
    read_answers,
    text_problem,
    timestamps,
)

LANDING = pa.schema([
    ("id", pa.string()), ("ts", pa.timestamp("us")), ("ts_observed", pa.bool_()), ("user_id", pa.string()),
    ("model_version", pa.string()), ("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string()),
    ("chosen_raw", pa.string()), ("rejected_raw", pa.string()), ("prep_problem", pa.string()),
])


_SEP, _ROLE = "\x1f", "\x1e"  # turn and role separators while splitting; rows holding them are refused


def _turns(side: str) -> pl.Expr:
    """A dialogue as [text before the first turn, "role\x1econtent", ...], contents stripped."""
    text = pl.col(side)
    return (
        pl.when(text.str.starts_with("Human:") | text.str.starts_with("Assistant:"))
        .then(pl.lit("\n\n") + text).otherwise(text)
        .str.replace_all("\n\nHuman:", _SEP + "user" + _ROLE, literal=True)
        .str.replace_all("\n\nAssistant:", _SEP + "assistant" + _ROLE, literal=True)
        .str.split(_SEP)
        .list.eval(pl.element().str.replace(_ROLE + r"\s+", _ROLE).str.strip_chars_end())
    )


def _side_problem(side: str) -> pl.Expr:
    return (
        pl.when(pl.col(side).is_null()).then(pl.lit(f"{side} is missing"))
        .when(pl.col(side).str.contains(_SEP, literal=True) | pl.col(side).str.contains(_ROLE, literal=True))
        .then(pl.lit(f"{side} holds the control character U+001E or U+001F"))
        .when((pl.col(f"{side}_t").list.len() < 2) | (pl.col(f"{side}_t").list.first().str.strip_chars() != ""))
        .then(pl.lit(f"{side} is not a dialogue of 'Human:' and 'Assistant:' turns"))
        .when(~pl.col(f"{side}_t").list.last().str.starts_with("assistant" + _ROLE))
        .then(pl.lit(f"{side} does not end with an Assistant turn"))
    )


def split_frame(chosen: list[str | None], rejected: list[str | None]) -> pl.DataFrame:
    """Per row: the shared history as a JSON list of turns, both final answers, and the problem (or
    null). Vectorised: the dialogues are cut at their turn markers with Polars string expressions."""
    df = pl.DataFrame({"chosen": chosen, "rejected": rejected}, schema={"chosen": pl.String, "rejected": pl.String})
    df = df.with_columns(chosen_t=_turns("chosen"), rejected_t=_turns("rejected"))
    df = df.with_columns(
        c_hist=pl.col("chosen_t").list.slice(1, pl.col("chosen_t").list.len() - 2),
        r_hist=pl.col("rejected_t").list.slice(1, pl.col("rejected_t").list.len() - 2),
        c_answer=pl.col("chosen_t").list.last().str.split_exact(_ROLE, 1).struct.field("field_1"),
        r_answer=pl.col("rejected_t").list.last().str.split_exact(_ROLE, 1).struct.field("field_1"),
    ).with_columns(
        turns=pl.col("c_hist").list.eval(
            pl.element().str.split_exact(_ROLE, 1).struct.rename_fields(["role", "content"])),
    )
    problem = pl.coalesce(_side_problem("chosen"), _side_problem("rejected"))
    shared = (
        pl.when(pl.col("c_hist") != pl.col("r_hist"))
        .then(pl.lit("chosen and rejected do not share the history up to the last assistant turn"))
        .when(pl.col("c_answer") == "").then(pl.lit("chosen's final answer is empty"))
        .when(pl.col("r_answer") == "").then(pl.lit("rejected's final answer is empty"))
        .when(pl.col("c_answer") == pl.col("r_answer")).then(pl.lit("chosen and rejected final answers are identical"))
        .when(pl.col("c_hist").list.len() == 0).then(pl.lit("shared history has no turns"))
        .when(pl.col("turns").list.eval(pl.element().struct.field("content") == "").list.any())
        .then(pl.lit("shared history has a turn with no text"))
        .when(pl.col("turns").list.last().struct.field("role") != "user")
        .then(pl.lit("shared history must end with the user's turn"))
    )
    return df.select(
        prompt=pl.when(pl.col("c_hist").list.len() > 0).then(
            pl.lit("[") + pl.col("turns").list.eval(pl.element().struct.json_encode()).list.join(", ") + pl.lit("]")),
        chosen=pl.col("c_answer"),
        rejected=pl.col("r_answer"),
        problem=pl.coalesce(problem, shared),
    )


def split_pair(chosen: str | None, rejected: str | None) -> tuple[list | None, str | None, str | None, str | None]:
    """(shared history turns, chosen answer, rejected answer, problem) for one row."""
    row = split_frame([chosen], [rejected]).row(0, named=True)
    prompt = None if row["prompt"] is None else json.loads(row["prompt"])
    return prompt, row["chosen"], row["rejected"], row["problem"]


def _messages_problem(prompt: str | None, chosen: str | None, rejected: str | None) -> str | None:
    """The checks split_frame makes on text dialogues, for dialogues given as messages."""
    if prompt is None:
        return "chosen and rejected share no turn before their answers"
    if not (chosen or "").strip():
        return "chosen's final answer is empty"
    if not (rejected or "").strip():
        return "rejected's final answer is empty"
    if chosen == rejected:
        return "chosen and rejected final answers are identical"
    turns = json.loads(prompt)
    if any(not str(t.get("content") or "").strip() for t in turns):
        return "shared history has a turn with no text"
    if turns[-1].get("role") != "user":
        return "shared history must end with the user's turn"
    return None


def prepare(inp: ResolvedInput, values: dict[str, list[Any]], n: int) -> pa.RecordBatch:
    chosen_raw = [as_text(v) for v in values["chosen"]]
    rejected_raw = [as_text(v) for v in values["rejected"]]
    ts, observed, ts_problem = timestamps(values, n)
    key, key_problem = keys(values, n, chosen_raw, rejected_raw, column(values, "user_id", n),
                            [str(v) for v in column(values, "ts", n)])
    # Dialogues written as chat messages (TRL's conversational preference rows without a prompt, UltraFeedback's
    # chosen/rejected): the prompt is the conversation both sides share, the answers their last assistant turns.
    messages = [message_turns(c) is not None or message_turns(r) is not None
                for c, r in zip(values["chosen"], values["rejected"], strict=True)]
    split = split_frame([None if m else c for c, m in zip(chosen_raw, messages, strict=True)],
                        [None if m else r for r, m in zip(rejected_raw, messages, strict=True)])
    prompt, chosen, rejected = (split.get_column(c).to_list() for c in ("prompt", "chosen", "rejected"))
    split_problem = split.get_column("problem").to_list()
    for i in (i for i, m in enumerate(messages) if m):
        prompt[i], (chosen[i], rejected[i]), split_problem[i] = read_answers(
            None, [values["chosen"][i], values["rejected"][i]], ("chosen", "rejected"))
        split_problem[i] = split_problem[i] or _messages_problem(prompt[i], chosen[i], rejected[i])
    problems = [first_problem(kp, tp, None if m else text_problem(c, "chosen"),
                              None if m else text_problem(r, "rejected"), sp)
                for kp, tp, c, r, m, sp in zip(key_problem, ts_problem, values["chosen"], values["rejected"], messages,
                                               split_problem, strict=True)]
    return batch({
        "id": key, "ts": ts, "ts_observed": observed,
        "user_id": [as_text(v) for v in column(values, "user_id", n)],
        "model_version": [as_text(v) for v in column(values, "model_version", n)],
        "prompt": prompt, "chosen": chosen, "rejected": rejected,
        # The whole dialogues are kept only where the split failed (for the quarantine); a usable row's
        # prompt and answers hold all of it.
        "chosen_raw": [c if p else None for c, p in zip(chosen_raw, problems, strict=True)],
        "rejected_raw": [r if p else None for r, p in zip(rejected_raw, problems, strict=True)],
        "prep_problem": problems,
    }, LANDING)


TRANSCRIPTS = LogShape(
    name="transcripts",
    inputs=(
        ShapeInput(
            name="rows", default_table="transcripts", raw_table="raw_transcripts", key="id", cursor="ts",
            columns=("id", "ts", "user_id", "model_version", "chosen", "rejected"),
            optional=("id", "ts", "user_id", "model_version"),
            text_columns=("prompt", "chosen", "rejected", "chosen_raw", "rejected_raw"), json_columns=("prompt",),
        ),
    ),
    prepare=prepare,
    doc="chosen + rejected whole dialogues ('\\n\\nHuman: ... \\n\\nAssistant: ...'); optional id, ts, user_id",
)
