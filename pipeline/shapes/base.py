"""What a log shape is, and the per-batch helpers shapes share when they land a source's rows.

A shape names its inputs (a source table each, with a key and an optional cursor), the landing
table each input goes to, a `prepare` step that turns one Arrow batch of source rows into landing
rows (renaming mapped columns, parsing text, computing content keys), and the SQL files that turn
landed rows into canonical unpaired rows, pairs and quarantine.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict

from alignloop.connectors.base import ROW_PROBLEM


class NoShapeOptions(BaseModel):
    """A shape without settings of its own: any key under shape_options is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class ShapeInput:
    name: str                   # e.g. "feedback"; the key under a source's mapping
    default_table: str          # the source table read when the mapping names none
    raw_table: str              # landing table in the store
    key: str                    # natural key within a source (idempotent merge)
    cursor: str                 # incremental column (half-open windows on it)
    columns: tuple[str, ...]    # canonical column names the shape reads
    # Columns a source may lack. None: every column is required and the cursor is always used (the
    # `events` shape). Otherwise the input reads all source columns, and reads incrementally only
    # when the mapping names the cursor column; without it every run re-reads the source and rows
    # already landed are skipped by key.
    optional: tuple[str, ...] | None = None
    # Landing-table columns (for a prepared shape, the columns its `prepare` returns) holding free
    # text: PII-scrubbed, size-limited and refused when blank at landing.
    text_columns: tuple[str, ...] = ()
    # Text columns holding JSON (a prompt as a list of turns): PII is scrubbed in their decoded strings.
    json_columns: tuple[str, ...] = ()
    # Landing-table columns naming a person: hashed with the store's per-installation salt at landing.
    user_columns: tuple[str, ...] = ("user_id",)
    # Columns a mapping may give as a list of source columns (`answers: [answer 1, answer 2]`): the shape
    # then sees one list per row, the values of those columns in the order named.
    list_columns: tuple[str, ...] = ()


Prepare = Callable[["ResolvedInput", dict[str, list[Any]], int], pa.RecordBatch]


@dataclass(frozen=True)
class LogShape:
    name: str
    inputs: tuple[ShapeInput, ...]
    # The shape's SQL files; each left unset is sql/shapes/<name>_<part>.sql (see SQL_PARTS).
    raw_tables_sql: str = ""    # DDL of the landing tables
    classify_sql: str = ""      # builds temp table <name>_classified with a `problem` column
    unpaired_sql: str = ""
    pairs_sql: str = ""
    quarantine_sql: str = ""
    # Turns the mapped source columns of one batch (canonical name -> Python values; absent
    # optional columns are missing from the dict) into a batch of landing-table rows.
    prepare: Prepare | None = None
    options: type[BaseModel] = NoShapeOptions
    # Names of the validated options bound as SQL parameters (besides $source) in classify_sql.
    sql_options: tuple[str, ...] = ()
    doc: str = ""
    # The input whose rows may wait for rows of another input (its `key` is a column of the
    # classified table), and what they wait for; None: nothing in this shape waits.
    pending_input: str | None = None
    awaits: str = "generation"
    # Keys of the last input resting on replaced rows of an earlier input (reads temp table replaced_keys).
    dependents_sql: str | None = None
    # Canonical ranks (answers ranked against each other); None: the shape observes no rankings.
    ranks_sql: str | None = None
    # Canonical ties (two answers judged equally good or both bad): kept as observed, never pairs; None: none.
    ties_sql: str | None = None
    # Rows of an earlier input still waiting for feedback (input, key, canonical_id, waiting_for, ts,
    # payload): pending, then quarantined after ingest.pending_timeout. None: nothing is expected.
    unanswered_sql: str | None = None
    # The canonical SQL's joins run as written, the right side of each the hash table (pipeline/ingest/
    # writes.py, joins_as_written): DuckDB's estimates for freshly staged rows are too low to choose it.
    joins_as_written: bool = False

    def __post_init__(self) -> None:
        for attr, part in SQL_PARTS.items():
            if not getattr(self, attr):
                object.__setattr__(self, attr, f"shapes/{self.name}_{part}.sql")

    def input(self, name: str) -> ShapeInput:
        return next(i for i in self.inputs if i.name == name)


# LogShape's SQL fields and the file each names by default: sql/shapes/<shape name>_<part>.sql.
SQL_PARTS = {"raw_tables_sql": "raw_tables", "classify_sql": "classified", "unpaired_sql": "unpaired",
             "pairs_sql": "pairs", "quarantine_sql": "quarantine"}


@dataclass(frozen=True)
class ResolvedInput:
    """One input of one source: which source table and columns feed which canonical columns."""

    spec: ShapeInput
    table: str
    source_columns: dict[str, str]  # canonical name -> source column name
    explicit: frozenset[str] = frozenset()   # canonical names the mapping named
    prepare: Prepare | None = None
    options: BaseModel = field(default_factory=NoShapeOptions)
    column_lists: dict[str, tuple[str, ...]] = field(default_factory=dict)  # canonical name -> source columns

    @property
    def cursor_column(self) -> str | None:
        """The source column windows are taken on, or None: read everything every run."""
        if self.spec.optional is None or self.spec.cursor in self.explicit:
            return self.source_columns[self.spec.cursor]
        return None

    @property
    def read_columns(self) -> tuple[str, ...]:
        """Source columns to ask the connector for; empty means all (shapes with optional columns)."""
        return tuple(self.source_columns.values()) if self.spec.optional is None else ()

    def cursor_high(self, landed: pa.RecordBatch) -> Any:
        """The largest cursor value of a landed batch, or None. For prepared shapes only observed,
        parseable times count: a row whose time was missing or broken never moves the cursor."""
        if self.cursor_column is None:
            return None
        if self.prepare is None:
            return pc.max(landed.column(self.spec.cursor)).as_py()
        observed = pc.filter(landed.column("ts"), landed.column("ts_observed"))
        return pc.max(observed).as_py() if len(observed) else None

    def to_canonical(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """One batch of source rows as landing rows. A missing required column raises KeyError(name)."""
        if self.prepare is None:
            return pa.RecordBatch.from_arrays(
                [batch.column(self.source_columns[c]) for c in self.spec.columns], names=list(self.spec.columns)
            )
        present = set(batch.schema.names)
        n = batch.num_rows
        # Why the connector could not read a row (a line of invalid UTF-8 or broken JSON), or NULL.
        problems = batch.column(ROW_PROBLEM).to_pylist() if ROW_PROBLEM in present else [None] * n
        values: dict[str, list[Any]] = {}
        for canonical, source_name in self.source_columns.items():
            if source_name in present:
                values[canonical] = _column_values(batch.column(source_name), canonical, problems)
            elif (nested := _nested_values(batch, source_name, canonical, problems)) is not None:
                values[canonical] = nested
            elif canonical not in (self.spec.optional or ()) or canonical in self.explicit:
                raise KeyError(source_name)
        for canonical, names in self.column_lists.items():
            columns = []
            for source_name in names:
                if source_name not in present:
                    raise KeyError(source_name)
                columns.append(_column_values(batch.column(source_name), canonical, problems))
            values[canonical] = [list(row) for row in zip(*columns, strict=True)]
        if not any(problems):
            return self.prepare(self, values, n)
        # Rows read with a problem land as the shape makes them, with that problem: quarantined with it.
        good = [i for i in range(n) if problems[i] is None]
        parts = [self.prepare(self, _rows(values, good), len(good))]
        for i in (i for i in range(n) if problems[i] is not None):
            row = _rows(values, [i])
            parts.append(_with_problem(self.prepare(self, row, 1), problems[i], self.spec.key,
                                       unread=all(v[0] is None for v in row.values())))
        return pa.Table.from_batches(parts).combine_chunks().to_batches()[0]


def _column_values(column: pa.Array, name: str, problems: list[str | None]) -> list[Any]:
    """A source column's values as Python values: JSON documents decoded (a column of mixed types holds
    text, numbers and objects), bytes decoded as UTF-8 (a row whose bytes are not UTF-8 gets that problem)."""
    if isinstance(column.type, pa.JsonType):
        return [None if v is None else json.loads(v) for v in column.storage.to_pylist()]
    values = column.to_pylist()
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        return _decoded(values, name, problems)
    return values


def _nested_values(batch: pa.RecordBatch, source_name: str, canonical: str, problems: list[str | None]
                   ) -> list[Any] | None:
    """A field inside an object column, named by a dotted path (`question.full_text`), when the source has no
    column of that whole name; None when the first part names no column either. A row whose object lacks
    the field gets None (then named as missing by the shape)."""
    head, _, rest = source_name.partition(".")
    if not rest or head not in batch.schema.names:
        return None
    out = []
    for value in _column_values(batch.column(head), canonical, problems):
        for key in rest.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        out.append(value)
    return out


def _rows(values: dict[str, list[Any]], rows: list[int]) -> dict[str, list[Any]]:
    return {k: [v[i] for i in rows] for k, v in values.items()}


def _with_problem(landed: pa.RecordBatch, problem: str, key: str, unread: bool) -> pa.RecordBatch:
    """Landing rows of one source row marked with why it could not be read. A row nothing could be read from
    is keyed by its problem (which names its line), so two such rows stay two."""
    for name in ("prep_problem", "target_problem"):
        if name in landed.schema.names:
            i = landed.schema.get_field_index(name)
            landed = landed.set_column(i, name, pa.array([problem] * landed.num_rows, pa.string()))
    if unread:
        i = landed.schema.get_field_index(key)
        landed = landed.set_column(i, key, pa.array([content_key(problem)] * landed.num_rows, pa.string()))
    return landed


def _decoded(values: list[Any], name: str, problems: list[str | None]) -> list[Any]:
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bytes):
            try:
                v = v.decode()
            except UnicodeDecodeError:
                v = v.decode(errors="backslashreplace")
                problems[i] = problems[i] or f"{name} is not valid UTF-8"
        out.append(v)
    return out


# ------------------------------------------------------------------------------ per-row helpers
def load_time() -> datetime:
    """The timestamp given to rows whose source has no timestamp column: when they were landed.
    Landing tables keep `ts_observed = false` beside it, so it is never taken for an observed time."""
    return datetime.now(UTC).replace(tzinfo=None)


def content_key(*parts: Any) -> str:
    """A stable key from row content, for sources without an id: the same content, the same key."""
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, sort_keys=True, default=str).encode()).hexdigest()


def as_text(value: Any) -> str | None:
    """A text field as a string; numbers and structures are written as JSON, never dropped."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def text_problem(value: Any, name: str) -> str | None:
    """Why a value where text belongs is no text: an object, a list, NaN or an infinity (a number or a
    boolean reads as the text JSON writes for it). A column of mixed JSON values can hold any of them."""
    if isinstance(value, dict):
        return f"{name} is an object, not text"
    if isinstance(value, (list, tuple)):
        return f"{name} is a list, not text"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name} is {json.dumps(value)}, not text"
    return None


def as_id(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, default=str)


_ROLES = {
    "user": "user", "human": "user", "prompter": "user",
    "assistant": "assistant", "gpt": "assistant", "bot": "assistant", "model": "assistant", "ai": "assistant",
    "system": "system",
}


def normal_role(role: Any) -> Any:
    """The canonical role for the spellings exports use (human/prompter -> user, gpt/bot -> assistant);
    anything else is returned as it is and rejected by the shape's SQL."""
    return _ROLES.get(role.strip().lower(), role) if isinstance(role, str) else role


def _content_text(content: Any) -> Any:
    """A turn's content as text: a string as it is; a list of text parts (`[{"type": "text", "text": ...}]`, as
    chat APIs write them) joined; anything else as as_text writes it (a part of another type stays visible)."""
    if isinstance(content, list) and content and all(
            isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
            for part in content):
        return "".join(part["text"] for part in content)
    return as_text(content)


def message_turns(value: Any) -> list[dict[str, Any]] | None:
    """An answer given as chat messages (a list of {role, content}, or one such object) as turns with their
    roles normalised; None when the value is not messages (text, a number, a list of something else)."""
    if isinstance(value, dict) and ("role" in value or "from" in value):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        return None
    if not all(isinstance(m, dict) and ("role" in m or "from" in m) for m in value):
        return None
    return [_turn(m) for m in value]


def _turn(message: dict[str, Any]) -> dict[str, Any]:
    """One chat message as a turn: its role normalised ({role}, or ShareGPT's {from}) and its content as text
    ({content}, {value} or {text})."""
    return {"role": normal_role(message.get("role", message.get("from"))),
            "content": _content_text(message.get("content", message.get("value", message.get("text"))))}


def read_answers(prompt_json: str | None, raw: list[Any], names: tuple[str, ...]
                 ) -> tuple[str | None, list[str | None], str | None]:
    """(prompt, answer texts, problem) of one row whose answers may be chat messages, as TRL's conversational
    datasets, UltraFeedback or Chatbot Arena write them. Text answers are kept as they are (an object, a
    list of something else, NaN or an infinity is the row's problem). Messages: turns the prompt already
    holds, at the start of every side, are dropped; otherwise, with two sides or more, the conversation
    they all share before their answers is the prompt (a mapped prompt must be the end of it). What is
    left of each side must be one assistant turn, its answer."""
    sides = [message_turns(v) for v in raw]
    if all(s is None for s in sides):
        return prompt_json, [as_text(v) for v in raw], first_problem(
            *(text_problem(v, name) for v, name in zip(raw, names, strict=True)))
    for v, s, name in zip(raw, sides, names, strict=True):
        if s is None and (problem := f"{name} is missing" if v is None else text_problem(v, name)):
            return prompt_json, [None] * len(raw), problem
    turns = [s if s is not None else [{"role": "assistant", "content": as_text(v)}] for v, s in zip(raw, sides, strict=True)]
    prompt = json.loads(prompt_json) if prompt_json is not None else None
    if prompt and all(len(t) > len(prompt) and t[:len(prompt)] == prompt for t in turns):
        turns = [t[len(prompt):] for t in turns]
    elif len(turns) > 1:
        shared = 0
        while all(len(t) > shared + 1 for t in turns) and all(t[shared] == turns[0][shared] for t in turns):
            shared += 1
        if shared:
            history = turns[0][:shared]
            if prompt is not None and history[-len(prompt):] != prompt:
                return prompt_json, [None] * len(raw), (
                    f"prompt is not the end of the conversation {' and '.join(names)} share before their answers")
            prompt_json = json.dumps(history, ensure_ascii=False)
            turns = [t[shared:] for t in turns]
    texts = []
    for t, name in zip(turns, names, strict=True):
        if t[-1]["role"] != "assistant":
            return prompt_json, [None] * len(raw), f"{name} ends with a {t[-1]['role']!r} turn, not an assistant answer"
        if len(t) != 1:
            return prompt_json, [None] * len(raw), (
                f"{name} holds {len(t)} turns after the prompt, not one assistant answer"
                + (" (the sides differ before their last turn)" if len(turns) > 1 else ""))
        texts.append(t[0]["content"])
    return prompt_json, texts, None


_MARKUP = re.compile(r"\n\n(Human|Assistant):")
_MARKUP_END = "\n\nAssistant:"


def markup_turns(text: str) -> list[dict[str, str]] | None:
    """A prompt written in Anthropic's dialogue markup, the way HH-derived exports give prompts ("\\n\\nHuman:
    ... \\n\\nAssistant: ... \\n\\nHuman: ... \\n\\nAssistant:"), as its turns; None for any other text.
    Only text that starts with a Human turn and ends with the empty Assistant turn is read so."""
    body = text.rstrip()
    if body.startswith(("Human:", "Assistant:")):
        body = "\n\n" + body
    if not body.startswith("\n\nHuman:") or not body.endswith(_MARKUP_END):
        return None
    pieces = _MARKUP.split(body[:-len(_MARKUP_END)])
    return [{"role": "user" if role == "Human" else "assistant", "content": content.strip()}
            for role, content in zip(pieces[1::2], pieces[2::2], strict=True)]


def as_conversation(value: Any) -> str | None:
    """A prompt as a JSON list of {role, content}: plain text becomes one user turn; a messages list
    (Arrow list of structs, a JSON string of one, or {"messages": [...]}) keeps its turns with their
    roles normalised. Anything else gives None."""
    if value is None:
        return None
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                parsed = json.loads(stripped)
            except ValueError:
                parsed = None
            if isinstance(parsed, list) and parsed and all(isinstance(m, dict) for m in parsed):
                value = parsed
        if isinstance(value, str):
            turns = markup_turns(value)
            return json.dumps(turns or [{"role": "user", "content": value}], ensure_ascii=False)
    if isinstance(value, dict):  # {"messages": [...]}, as chat APIs take them
        value = value.get("messages")
        if not isinstance(value, list):
            return None
    if isinstance(value, list):
        turns = [_turn(m) if isinstance(m, dict) else {"role": None, "content": as_text(m)} for m in value]
        return json.dumps(turns, ensure_ascii=False)
    return None  # a number or another structure is not a prompt; the caller names the problem


def parse_ts(value: Any) -> tuple[datetime | None, str | None]:
    """(naive UTC timestamp, problem): datetimes, ISO-8601 strings and epoch seconds are accepted."""
    if value is None:
        return None, "ts is missing"
    if isinstance(value, datetime):
        return (value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value), None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(float(value), UTC).replace(tzinfo=None), None
        except (OverflowError, OSError, ValueError):
            return None, f"ts {value!r} is not a timestamp"
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None, f"ts {value[:40]!r} is not an ISO-8601 timestamp"
        return (parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed), None
    return None, f"ts {str(value)[:40]!r} is not a timestamp"


def timestamps(values: dict[str, list[Any]], n: int, column: str = "ts") -> tuple[list, list[bool], list]:
    """(ts, ts_observed, problem) per row. A source without the column gets the load time, marked
    unobserved; a NULL or unparseable value in a column that exists is a problem, never replaced."""
    if column not in values:
        now = load_time()
        return [now] * n, [False] * n, [None] * n
    ts, problems = [], []
    for v in values[column]:
        t, p = parse_ts(v)
        ts.append(t if t is not None else load_time())
        problems.append(p)
    return ts, [p is None for p in problems], problems


def first_problem(*problems: str | None) -> str | None:
    return next((p for p in problems if p), None)


def column(values: dict[str, list[Any]], name: str, n: int) -> list[Any]:
    """A mapped column's values, or n NULLs when an optional column is absent."""
    return values.get(name, [None] * n)


def batch(columns: dict[str, list[Any]], schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(columns, schema=schema)


def conversation_problem(prompt_json: str | None, name: str = "prompt", raw: Any = None) -> str | None:
    """Why a prompt (JSON list of turns) cannot be used, or None: every turn needs a known role and
    text, and the last turn must be the user's. `raw` is the value the source held."""
    if prompt_json is None:
        return f"{name} is missing" if raw is None else f"{name} is neither text nor a messages list"
    turns = json.loads(prompt_json)
    if not turns:
        return f"{name} has no turns"
    for i, t in enumerate(turns):
        if t.get("role") not in ("system", "user", "assistant"):
            return f"{name} turn {i} has no role system, user or assistant (got {t.get('role')!r})"
        if t.get("content") is None or not str(t["content"]).strip():
            return f"{name} turn {i} has no text"
    if turns[-1]["role"] != "user":
        return f"{name} must end with the user's turn"
    return None


def answer_problem(text: str | None, name: str) -> str | None:
    if text is None:
        return f"{name} is missing"
    if not text.strip():
        return f"{name} is empty"
    return None


def keys(values: dict[str, list[Any]], n: int, *content: list[Any], column: str = "id") -> tuple[list[str], list]:
    """(key, problem) per row: the source's id when the source has one, else a content hash. A NULL id
    in an id column that exists is a problem (the content hash stands in as the landing key)."""
    hashed = [content_key(*parts) for parts in zip(*content, strict=True)] if content else [None] * n
    if column not in values:
        return hashed, [None] * n
    ids = [as_id(v) for v in values[column]]
    return ([i if i is not None else h for i, h in zip(ids, hashed, strict=True)],
            [text_problem(v, column) if i is not None else f"{column} is missing"
             for i, v in zip(ids, values[column], strict=True)])


def judged_answer_columns(values: dict[str, list[Any]], n: int, judged: list[tuple[Any, str | None]],
                          raw: list[str | None]) -> dict[str, list[Any]]:
    """Landing columns of a shape with one answer per row and one judgement of it (a thumbs label, a score):
    id, ts, ts_observed, user_id, model_version, prompt, completion and prep_problem. `judged` holds each
    row's (parsed judgement, problem) and `raw` the judgement as the source wrote it (part of the
    content key); the shape adds its own judgement columns."""
    read = [read_answers(as_conversation(p), [c], ("completion",))
            for p, c in zip(values["prompt"], values["completion"], strict=True)]
    prompt = [p for p, _, _ in read]
    completion = [c for _, (c,), _ in read]
    ts, observed, ts_problem = timestamps(values, n)
    key, key_problem = keys(values, n, prompt, completion, raw, column(values, "user_id", n),
                            [str(v) for v in column(values, "ts", n)])
    problems = [
        first_problem(kp, tp, conversation_problem(p, raw=rp), ap, answer_problem(c, "completion"), jp)
        for kp, tp, p, rp, c, (_, _, ap), (_, jp) in zip(key_problem, ts_problem, prompt, values["prompt"], completion,
                                                         read, judged, strict=True)
    ]
    return {
        "id": key, "ts": ts, "ts_observed": observed,
        "user_id": [as_text(v) for v in column(values, "user_id", n)],
        "model_version": [as_text(v) for v in column(values, "model_version", n)],
        "prompt": prompt, "completion": completion, "prep_problem": problems,
    }
