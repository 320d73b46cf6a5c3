"""The `transcripts` shape: two whole dialogues, chosen and rejected, in the
"\\n\\nHuman: ... \\n\\nAssistant: ..." style. The prompt is their shared history; the answers are
what each side says after the last shared turn. Rows whose sides do not share the history up to
the last assistant turn, or whose final answer is empty, are quarantined with that reason.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa

from pipeline.shapes.base import (
    LogShape,
    ResolvedInput,
    ShapeInput,
    as_text,
    batch,
    column,
    conversation_problem,
    first_problem,
    keys,
    timestamps,
)

_SPEAKER = re.compile(r"(?:^|\n\n)(Human|Assistant):")
_ROLE = {"Human": "user", "Assistant": "assistant"}

LANDING = pa.schema([
    ("id", pa.string()), ("ts", pa.timestamp("us")), ("ts_observed", pa.bool_()), ("user_id", pa.string()),
    ("model_version", pa.string()), ("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string()),
    ("chosen_raw", pa.string()), ("rejected_raw", pa.string()), ("prep_problem", pa.string()),
])


def parse_dialogue(text: str | None, side: str) -> tuple[list[dict[str, str]] | None, str | None]:
    """(turns, problem): a transcript split at its "\\n\\nHuman:" / "\\n\\nAssistant:" markers."""
    if text is None:
        return None, f"{side} is missing"
    marks = list(_SPEAKER.finditer(text))
    if not marks or text[: marks[0].start()].strip():
        return None, f"{side} is not a dialogue of 'Human:' and 'Assistant:' turns"
    turns = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        turns.append({"role": _ROLE[m.group(1)], "content": text[m.end(): end].strip()})
    return turns, None


def split_pair(chosen: str | None, rejected: str | None) -> tuple[list | None, str | None, str | None, str | None]:
    """(prompt turns, chosen answer, rejected answer, problem) for one row; nothing is guessed."""
    c_turns, c_problem = parse_dialogue(chosen, "chosen")
    r_turns, r_problem = parse_dialogue(rejected, "rejected")
    if c_problem or r_problem:
        return None, None, None, c_problem or r_problem
    for side, turns in (("chosen", c_turns), ("rejected", r_turns)):
        if turns[-1]["role"] != "assistant":
            return None, None, None, f"{side} does not end with an Assistant turn"
    if c_turns[:-1] != r_turns[:-1]:
        return None, None, None, "chosen and rejected do not share the history up to the last assistant turn"
    prompt, c_answer, r_answer = c_turns[:-1], c_turns[-1]["content"], r_turns[-1]["content"]
    if not c_answer:
        return prompt, c_answer, r_answer, "chosen's final answer is empty"
    if not r_answer:
        return prompt, c_answer, r_answer, "rejected's final answer is empty"
    if c_answer == r_answer:
        return prompt, c_answer, r_answer, "chosen and rejected final answers are identical"
    return prompt, c_answer, r_answer, None


def prepare(inp: ResolvedInput, values: dict[str, list[Any]], n: int) -> pa.RecordBatch:
    chosen_raw = [as_text(v) for v in values["chosen"]]
    rejected_raw = [as_text(v) for v in values["rejected"]]
    ts, observed, ts_problem = timestamps(values, n)
    key, key_problem = keys(values, n, chosen_raw, rejected_raw, column(values, "user_id", n),
                            [str(v) for v in column(values, "ts", n)])
    prompts, chosen, rejected, problems = [], [], [], []
    for c, r, kp, tp in zip(chosen_raw, rejected_raw, key_problem, ts_problem, strict=True):
        prompt, c_answer, r_answer, problem = split_pair(c, r)
        prompt_json = None if prompt is None else json.dumps(prompt, ensure_ascii=False)
        if problem is None and prompt_json is not None:
            problem = conversation_problem(prompt_json, "shared history")
        prompts.append(prompt_json)
        chosen.append(c_answer)
        rejected.append(r_answer)
        problems.append(first_problem(kp, tp, problem))
    return batch({
        "id": key, "ts": ts, "ts_observed": observed,
        "user_id": [as_text(v) for v in column(values, "user_id", n)],
        "model_version": [as_text(v) for v in column(values, "model_version", n)],
        "prompt": prompts, "chosen": chosen, "rejected": rejected,
        "chosen_raw": chosen_raw, "rejected_raw": rejected_raw, "prep_problem": problems,
    }, LANDING)


TRANSCRIPTS = LogShape(
    name="transcripts",
    raw_tables_sql="shapes/transcripts_raw_tables.sql",
    classify_sql="shapes/transcripts_classified.sql",
    unpaired_sql="shapes/transcripts_unpaired.sql",
    pairs_sql="shapes/transcripts_pairs.sql",
    quarantine_sql="shapes/transcripts_quarantine.sql",
    inputs=(
        ShapeInput(
            name="rows", default_table="transcripts", raw_table="raw_transcripts", key="id", cursor="ts",
            columns=("id", "ts", "user_id", "model_version", "chosen", "rejected"),
            optional=("id", "ts", "user_id", "model_version"),
        ),
    ),
    prepare=prepare,
    doc="chosen + rejected whole dialogues ('\\n\\nHuman: ... \\n\\nAssistant: ...'); optional id, ts, user_id",
)
