"""Canonical Arrow schemas of the feedback store: what every stage after ingest can rely on.

Prompts are conversations (a list of {role, content} turns ending with the user's turn); answers are
plain strings. Unpaired rows carry a thumbs label; pairs carry the preferred and the other answer; ranks carry an
answer's place among the answers ranked with it.
"""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
CONVERSATION = pa.list_(MESSAGE)

_COMMON = [
    ("event_id", pa.string()),
    ("source", pa.string()),
    ("ts", pa.timestamp("us")),
    ("user_id", pa.string()),
    ("model_version", pa.string()),
    ("prompt", CONVERSATION),
]

# ts_observed: false when the source had no time for the row and `ts` is when it was loaded.
UNPAIRED_SCHEMA = pa.schema([*_COMMON, ("completion", pa.string()), ("label", pa.bool_()), ("ts_observed", pa.bool_())])
PAIRS_SCHEMA = pa.schema([*_COMMON, ("chosen", pa.string()), ("rejected", pa.string()), ("ts_observed", pa.bool_())])
# Ranked answers as observed: answers sharing a group_id were ranked against each other (rank 0 is
# best). Pairs are derived from them when a snapshot is read (pipeline/conversions.py), never stored.
RANKS_SCHEMA = pa.schema([*_COMMON, ("completion", pa.string()), ("rank", pa.int64()), ("score", pa.float64()),
                          ("pair_margin", pa.float64()), ("group_id", pa.string()), ("answer_id", pa.string()),
                          ("ts_observed", pa.bool_())])


def prompt_key(prompt: list[dict[str, str]]) -> str:
    """A stable hash of a conversation; the unit of the train/holdout split."""
    canonical = json.dumps([[m["role"], m["content"]] for m in prompt], ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def is_holdout(prompt: list[dict[str, str]], holdout_fraction: float) -> bool:
    """True when this prompt belongs to the held-out split; the same prompt always lands on the same side."""
    return int(prompt_key(prompt)[:8], 16) / 0x1_0000_0000 < holdout_fraction




def holdout_flags(prompts: pa.ChunkedArray | pa.Array, holdout_fraction: float) -> list[bool]:
    """`is_holdout` for a whole column of conversations, without building a dict per turn."""
    out: list[bool] = []
    for chunk in prompts.chunks if isinstance(prompts, pa.ChunkedArray) else [prompts]:
        offsets = chunk.offsets.to_pylist()
        turns = chunk.values
        roles, contents = turns.field("role").to_pylist(), turns.field("content").to_pylist()
        for i in range(len(chunk)):
            lo, hi = offsets[i], offsets[i + 1]
            canonical = json.dumps([[roles[j], contents[j]] for j in range(lo, hi)], ensure_ascii=False)
            out.append(int(hashlib.sha256(canonical.encode()).hexdigest()[:8], 16) / 0x1_0000_0000 < holdout_fraction)
    return out
