"""The `message_trees` shape: OpenAssistant-style exports, in the three layouts they are published in.

- `messages` (`*.messages.jsonl`): one message a row (message_id, parent_id, role, text, rank, emojis,
  created_date, ...).
- `trees` (`*.trees.jsonl`): one tree a row, `{message_tree_id, prompt: {<root message>, replies: [...]}}`.
- `roots`: one root message a row (`parent_id` null), its answers nested under `replies`, no wrapper.

`shape_options.layout` names the layout, or `auto` (the default) tells it from the columns: a `prompt`
column is `trees`, a `replies` column `roots`, neither `messages`. Every layout lands as one row per
message. An export without `created_date` takes the landing time (kept as unobserved); a message whose
`created_date` is there but NULL or unparseable is quarantined. Emoji come as a map (`{"+1": 3}`) or as
`{name: [...], count: [...]}` lists.

The SQL then walks each thread from its root: sibling assistant replies with ranks are stored as ranks
(rank 0 is best), from which every better-ranked vs worse-ranked pair is derived when a snapshot is
read (pipeline/conversions.py), and a reply's net emoji vote ("+1" count minus "-1" count) gives a
thumb (ties give none; other emoji are ignored). Every message that ends in no canonical row is
quarantined with the reason.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

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
    text_problem,
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
    if isinstance(emojis, dict) and isinstance(emojis.get("name"), list) and isinstance(emojis.get("count"), list):
        emojis = dict(zip(emojis["name"], emojis["count"], strict=False))  # {name: [...], count: [...]}
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
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():  # a CSV export's text
        return int(value), None
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
        return None, f"rank {value!r} is not an integer"
    return int(value), None


class MessageTreesOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    layout: Literal["auto", "messages", "trees", "roots"] = Field(
        "auto", description="messages: one message a row; trees: one tree a row under `prompt`; roots: one root "
        "message a row with its answers under `replies`; auto: trees with a `prompt` column, roots with a "
        "`replies` column, else messages.")


def _message(node: dict[str, Any], parent_id: str | None, tree_id: str | None) -> dict[str, Any]:
    text = as_text(node.get("text"))
    role = normal_role(node.get("role"))
    message_id = as_id(node.get("message_id"))
    rank, rank_problem = _rank(node.get("rank"))
    up, down, emoji_problem = emoji_votes(node.get("emojis"))
    # A message without the field takes the landing time; one whose field is NULL or broken is a problem.
    ts, ts_problem = parse_ts(node.get("created_date")) if "created_date" in node else (None, None)
    problem = first_problem(
        "message_id is missing" if message_id is None else None,
        "deleted in the export" if _flag(node.get("deleted")) is True else None,
        "failed review in the export (review_result false)" if _flag(node.get("review_result")) is False else None,
        None if role in ("user", "assistant") else f"role {node.get('role')!r} is not prompter or assistant",
        text_problem(node.get("text"), "text"),
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


def _flag(value: Any) -> bool | None:
    """A true/false field as a bool, written as JSON booleans or as text (a CSV export); anything else None."""
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower())
    return value if isinstance(value, bool) else None


def _decoded(value: Any) -> Any:
    """A nested part a reader left as JSON text (DuckDB types a deep part JSON when its rows differ)."""
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _flatten(root: dict[str, Any], tree_id: str | None) -> list[dict[str, Any]]:
    """Every message of a tree, root first; a tree's id is its root message's when the export names none."""
    tree_id = tree_id or as_id(root.get("message_id"))
    out, stack = [], [(root, as_id(root.get("parent_id")))]
    while stack:
        node, parent_id = stack.pop()
        msg = _message(node, parent_id, tree_id)
        out.append(msg)
        replies = _decoded(node.get("replies")) or []
        children = [_decoded(child) for child in (replies if isinstance(replies, list) else [])]
        stack.extend((child, msg["message_id"]) for child in reversed(children) if isinstance(child, dict))
    return out


def _layout(inp: ResolvedInput, values: dict[str, list[Any]]) -> str:
    layout = getattr(inp.options, "layout", "auto")
    if layout == "auto":
        layout = "trees" if "prompt" in values else "roots" if "replies" in values else "messages"
    needed = {"trees": ("prompt",), "roots": ("message_id", "role", "text"), "messages": FLAT_REQUIRED}[layout]
    missing = [c for c in needed if c not in values]
    if missing:
        raise KeyError(inp.source_columns[missing[0]])
    return layout


def _trees(values: dict[str, list[Any]], n: int) -> list[dict[str, Any]]:
    """Messages of one tree a row: {message_tree_id, prompt: {<root>, replies: [...]}}."""
    rows: list[dict[str, Any]] = []
    for tree, tree_id in zip(values["prompt"], values.get("message_tree_id", [None] * n), strict=True):
        tree_id = as_id(tree_id)
        tree = _decoded(tree)
        if not isinstance(tree, dict):
            rows.append({**_message({}, None, tree_id), "message_id": content_key(tree_id, as_text(tree)),
                         "text": as_text(tree), "prep_problem": "tree has no prompt message (not a JSON object)"})
            continue
        rows.extend(_flatten(tree, tree_id))
    return rows


def prepare(inp: ResolvedInput, values: dict[str, list[Any]], n: int) -> pa.RecordBatch:
    layout = _layout(inp, values)
    if layout == "trees":
        rows = _trees(values, n)
    else:  # one message a row; a root message's answers, when nested under `replies`, are read from there
        rows = []
        names = [c for c in inp.spec.columns if c in values and (layout == "roots" or c != "replies")]
        for i in range(n):
            node = {c: values[c][i] for c in names}
            tree_id = as_id(node.get("message_tree_id"))
            rows.extend(_flatten(node, tree_id) if layout == "roots" else
                        [_message(node, as_id(node.get("parent_id")), tree_id)])
    return batch({c: [r[c] for r in rows] for c in LANDING.names}, LANDING)


MESSAGE_TREES = LogShape(
    name="message_trees",
    ranks_sql="shapes/message_trees_ranks.sql",
    inputs=(
        ShapeInput(
            name="rows", default_table="message_trees", raw_table="raw_message_trees", key="message_id",
            cursor="created_date",
            columns=("message_id", "parent_id", "role", "text", "rank", "emojis", "created_date", "user_id",
                     "deleted", "review_result", "model_name", "message_tree_id", "prompt", "replies"),
            optional=("message_id", "parent_id", "role", "text", "rank", "emojis", "created_date", "user_id",
                      "deleted", "review_result", "model_name", "message_tree_id", "prompt", "replies"),
            text_columns=("text",),
        ),
    ),
    prepare=prepare,
    options=MessageTreesOptions,
    doc="OpenAssistant exports: one message, one tree (under `prompt`) or one root message (with `replies`) a row",
)
