"""The `message_trees` shape: OpenAssistant-style exports, flat or nested.

Flat exports have one message a row (message_id, parent_id, role, text, rank, emojis, created_date,
...); nested exports have one tree a row, its root under `prompt` with children under `replies`.
Both land as one row per message. The SQL then walks each thread from its root: sibling assistant
replies with ranks are stored as ranks (rank 0 is best), from which every better-ranked vs
worse-ranked pair is derived when a snapshot is read (pipeline/conversions.py), and a reply's
net emoji vote ("+1" count minus "-1" count) gives a thumb (ties give none; other emoji are
ignored). Every message that ends in no canonical row is quarantined with the reason.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from alignloop.shapes.base import (
    LogShape,
    ResolvedInput,
    ShapeInput,
    as_id,
    as_text,
    batch,
    content_key,
    first_problem,
    load_time,
    normal_role,
    parse_ts,
)

LANDING = pa.schema([
    ("message_id", pa.string()), ("parent_id", pa.string()), ("tree_id", pa.string()), ("role", pa.string()),
    ("text", pa.string()), ("rank", pa.int64()), ("votes_up", pa.int64()), ("votes_down", pa.int64()),
    ("emojis", pa.string()), ("ts", pa.timestamp("us")), ("ts_observed", pa.bool_()), ("user_id", pa.string()),
    ("model_name", pa.string()), ("prep_problem", pa.string()),
])

FLAT_REQUIRED = ("message_id", "role", "text")


def emoji_votes(emojis: Any) -> tuple[int, int, str | None]:
    """(+1 count, -1 count, problem) from an emoji map ({"+1": 3, "-1": 1, "_skip_reply": 2}), a JSON
    string of one, or a list of {name, count}; other emoji are ignored."""
    if emojis is None:
        return 0, 0, None
    if isinstance(emojis, str):
        try:
            emojis = json.loads(emojis) if emojis.strip() else {}
        except ValueError:
            return 0, 0, f"emojis {emojis[:40]!r} is not a JSON object"
    if isinstance(emojis, list):  # [{name, count}], or an Arrow map's [(emoji, count)]
        emojis = dict(e for e in emojis if isinstance(e, tuple) and len(e) == 2) | {
            e.get("name"): e.get("count") for e in emojis if isinstance(e, dict)}
    if not isinstance(emojis, dict):
        return 0, 0, f"emojis {str(emojis)[:40]!r} is not a map of emoji to count"
    counts = []
    for name in ("+1", "-1"):
        value = emojis.get(name) or 0
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return 0, 0, f"emojis[{name!r}] {value!r} is not a count"
        counts.append(value)
    return counts[0], counts[1], None


def _rank(value: Any) -> tuple[int | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
        return None, f"rank {value!r} is not an integer"
    return int(value), None


def _message(node: dict[str, Any], parent_id: str | None, tree_id: str | None, has_ts: bool) -> dict[str, Any]:
    text = as_text(node.get("text"))
    role = normal_role(node.get("role"))
    message_id = as_id(node.get("message_id"))
    rank, rank_problem = _rank(node.get("rank"))
    up, down, emoji_problem = emoji_votes(node.get("emojis"))
    ts, ts_problem = parse_ts(node.get("created_date")) if has_ts else (None, None)
    problem = first_problem(
        "message_id is missing" if message_id is None else None,
        "deleted in the export" if node.get("deleted") is True else None,
        "failed review in the export (review_result false)" if node.get("review_result") is False else None,
        None if role in ("user", "assistant") else f"role {node.get('role')!r} is not prompter or assistant",
        "text is empty" if text is None or not text.strip() else None,
        rank_problem, emoji_problem, ts_problem,
    )
    return {
        "message_id": message_id or content_key(tree_id, parent_id, node.get("role"), text),
        "parent_id": parent_id, "tree_id": tree_id, "role": role, "text": text, "rank": rank,
        "votes_up": up, "votes_down": down,
        "emojis": None if node.get("emojis") is None else as_text(node.get("emojis")),
        "ts": ts or load_time(), "ts_observed": ts is not None, "user_id": as_text(node.get("user_id")),
        "model_name": as_text(node.get("model_name")), "prep_problem": problem,
    }


def _flatten(root: dict[str, Any], tree_id: str | None, has_ts: bool) -> list[dict[str, Any]]:
    out, stack = [], [(root, as_id(root.get("parent_id")))]
    while stack:
        node, parent_id = stack.pop()
        msg = _message(node, parent_id, tree_id, has_ts)
        out.append(msg)
        replies = node.get("replies") or []
        stack.extend((child, msg["message_id"]) for child in reversed(replies) if isinstance(child, dict))
    return out


def prepare(inp: ResolvedInput, values: dict[str, list[Any]], n: int) -> pa.RecordBatch:
    rows: list[dict[str, Any]] = []
    if "prompt" in values:  # nested export: one tree a row
        tree_ids = values.get("message_tree_id", [None] * n)
        for tree, tree_id in zip(values["prompt"], tree_ids, strict=True):
            tree_id = as_id(tree_id)
            if isinstance(tree, str):
                try:
                    tree = json.loads(tree)
                except ValueError:
                    tree = None
            if not isinstance(tree, dict):
                rows.append({**_message({}, None, tree_id, False), "message_id": content_key(tree_id, as_text(tree)),
                             "text": as_text(tree), "prep_problem": "tree has no prompt message (not a JSON object)"})
                continue
            rows.extend(_flatten(tree, tree_id, True))
    else:
        missing = [c for c in FLAT_REQUIRED if c not in values]
        if missing:
            raise KeyError(inp.source_columns[missing[0]])
        has_ts = "created_date" in values
        names = [c for c in inp.spec.columns if c in values]
        for i in range(n):
            node = {c: values[c][i] for c in names}
            rows.append(_message(node, as_id(node.get("parent_id")), as_id(node.get("message_tree_id")), has_ts))
    return batch({c: [r[c] for r in rows] for c in LANDING.names}, LANDING)


MESSAGE_TREES = LogShape(
    name="message_trees",
    ranks_sql="shapes/message_trees_ranks.sql",
    inputs=(
        ShapeInput(
            name="rows", default_table="message_trees", raw_table="raw_message_trees", key="message_id",
            cursor="created_date",
            columns=("message_id", "parent_id", "role", "text", "rank", "emojis", "created_date", "user_id",
                     "deleted", "review_result", "model_name", "message_tree_id", "prompt"),
            optional=("message_id", "parent_id", "role", "text", "rank", "emojis", "created_date", "user_id",
                      "deleted", "review_result", "model_name", "message_tree_id", "prompt"),
            text_columns=("text",),
        ),
    ),
    prepare=prepare,
    doc="OpenAssistant exports: flat messages (message_id, parent_id, role, text, rank, emojis) or nested trees",
)
