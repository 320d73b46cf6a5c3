"""Property: whatever text a row holds, it is stored byte for byte or quarantined with a reason.

Arbitrary text (backslashes, quotes, `\\u0000` written literally, control characters, invalid UTF-8 where
the format carries bytes, emoji, right-to-left text, text that looks like JSON, e-mail addresses, phone
and card numbers next to newlines, tabs and quotes, answers past ingest.max_text_chars) goes through
every log shape and every connector family: files (JSONL, CSV, Parquet), a DuckDB file and a real
PostgreSQL database. Every row ends either stored with exactly its text (PII placeholders aside, put
into the decoded text, as `scrub_text` does) or in quarantine with a one-line reason; a row of plain
text is never quarantined, and nothing raises.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alignloop.config import IngestSettings, SourceSettings
from alignloop.connectors.duckdb_file import DuckDBConnector, DuckDBSettings
from alignloop.connectors.files import FilesConnector, FilesSettings
from alignloop.connectors.postgres import PostgresConnector, PostgresSettings
from alignloop.ingest.store import FeedbackStore
from alignloop.pii import scrub_text
from alignloop.shapes import SHAPES
from alignloop.shapes.base import as_conversation
from alignloop.shapes.transcripts import split_pair
from tests.contract.servers import PG_HOST, PG_PORT, postgres_database, writable

SOURCE = "prop"
MAX_CHARS = 100_000

# ----------------------------------------------------------------------------------------------- text
PIECES = [
    "\\", '"', "'", "\\u0000", "\\n", "\\\\", "\n", "\t", "\r\n", "\r", "\x00", "\x07", "\x1b[31m", "\x7f", "\u2028",
    "😀", "👍🏽", "🇺🇳", "مرحبا بالعالم", "שלום", "\u202e", "\u200b", "\ufeff", "e\u0301", "漢字", " ",
    '{"role": "user", "content": "hi"}', '[{"role": "user", "content": "x"}]', "[1, 2]", "null", "NaN", '""',
    "person1@email.com", "bob.smith+tag@example.co.uk", "+1 555-123-4567", "(020) 7946 0958", "555.123.4567",
    "4111 1111 1111 1111", "4111111111111111", "4111-1111-1111-1112", "192.168.0.1", "fe80:0:0:0:202:b3ff:fe1e:8329",
    "Human:", "Assistant:", "007", "1e5", "true", "2026-11-02T10:00:00Z", "<b>x</b>", "%s", "${HOME}", "'; DROP TABLE x; --",
]
PLAIN = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30)
TEXT = st.one_of(
    PLAIN,
    st.lists(st.one_of(st.sampled_from(PIECES), PLAIN), min_size=1, max_size=6).map("".join),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40),  # control characters too
    st.sampled_from(["", "   ", "\n\t", "a" * (MAX_CHARS + 1), "An answer. " * 6_000]),
)
BYTES = st.tuples(TEXT, st.binary(min_size=1, max_size=4), TEXT).map(
    lambda t: t[0].encode() + b"\xff" + t[1] + b"\xc3" + t[2].encode())  # never valid UTF-8
VALUE = st.one_of(TEXT, TEXT, TEXT, BYTES)


def is_plain(value: Any) -> bool:
    """Text no check may refuse: printable, not blank, short, without PII, turn markers or JSON look."""
    return (isinstance(value, str) and 0 < len(value) <= 1000 and value.strip() == value and value.isprintable()
            and scrub_text(value) == value and value[:1] not in "[{" and "Human:" not in value
            and "Assistant:" not in value)


def decoded(value: Any) -> str:
    return value if isinstance(value, str) else value.decode(errors="backslashreplace")


# ----------------------------------------------------------------------------------------------- rows
@dataclass
class Row:
    """One input row: its id, its texts, and where its canonical rows are (event ids) and what they hold."""

    id: str
    texts: dict[str, Any]
    event_ids: tuple[str, ...]


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def canonical_ids(*keys: str) -> tuple[str, ...]:
    return tuple(md5(f"{SOURCE}:{k}") for k in keys)


TS = "2026-11-02T10:00:00Z"


def single_table(shape: str, fields: tuple[str, ...], extra: Callable[[int], dict[str, Any]] = lambda i: {}):
    def build(texts: list[dict[str, Any]]) -> tuple[dict[str, list[dict]], list[Row]]:
        rows, records = [], []
        for i, t in enumerate(texts):
            rid = f"k{i}"
            records.append({"id": rid, "ts": TS, **{f: t[f] for f in fields}, **extra(i)})
            rows.append(Row(rid, {f: t[f] for f in fields}, canonical_ids(rid, f"score:{rid}")))
        return {SHAPES[shape].inputs[0].default_table: records}, rows
    return build


def transcripts(texts: list[dict[str, Any]]) -> tuple[dict[str, list[dict]], list[Row]]:
    rows, records = [], []
    for i, t in enumerate(texts):
        rid = f"k{i}"
        chosen, rejected = (_join(b"\n\nHuman: ", t["prompt"], b"\n\nAssistant: ", t[side])
                            for side in ("chosen", "rejected"))
        records.append({"id": rid, "ts": TS, "chosen": chosen, "rejected": rejected})
        rows.append(Row(rid, {"chosen": chosen, "rejected": rejected}, canonical_ids(rid)))
    return {"transcripts": records}, rows


def _join(*parts: Any) -> Any:
    if any(isinstance(p, bytes) for p in parts):
        return b"".join(p if isinstance(p, bytes) else p.encode() for p in parts)
    return "".join(p.decode() if isinstance(p, bytes) else p for p in parts)


def message_trees(texts: list[dict[str, Any]]) -> tuple[dict[str, list[dict]], list[Row]]:
    records, rows = [], []
    for i, t in enumerate(texts):
        root = f"m{i}"
        records.append({"message_id": root, "parent_id": None, "role": "prompter", "text": t["prompt"], "rank": None,
                        "created_date": TS})
        rows.append(Row(root, {"prompt": t["prompt"]}, ()))
        for rank, side in enumerate(("chosen", "rejected")):
            mid = f"m{i}{side[0]}"
            records.append({"message_id": mid, "parent_id": root, "role": "assistant", "text": t[side], "rank": rank,
                            "created_date": TS})
            rows.append(Row(mid, {"prompt": t["prompt"], side: t[side]}, canonical_ids(f"rank:{mid}")))
    return {"message_trees": records}, rows


def messages_json(text: Any) -> Any:
    """A messages list of one user turn, as JSON text (bytes when the text is not UTF-8)."""
    if isinstance(text, bytes):
        return json.dumps([{"role": "user", "content": text.decode(errors="surrogateescape")}],
                          ensure_ascii=False).encode(errors="surrogateescape")
    return json.dumps([{"role": "user", "content": text}], ensure_ascii=False)


def events(texts: list[dict[str, Any]]) -> tuple[dict[str, list[dict]], list[Row]]:
    gens, fbs, rows = [], [], []
    for i, t in enumerate(texts):
        gens.append({"request_id": f"g{i}", "ts": TS, "user_id": "u", "model_version": "v",
                     "messages": messages_json(t["prompt"]), "response": t["completion"]})
        fbs.append({"event_id": f"f{i}", "request_id": f"g{i}", "ts": TS, "user_id": "u", "kind": "thumb",
                    "value": "up", "other_request_id": None})
        rows.append(Row(f"g{i}", {"prompt": t["prompt"], "completion": t["completion"]}, canonical_ids(f"f{i}")))
    return {"generations": gens, "feedback_events": fbs}, rows


def langfuse(texts: list[dict[str, Any]]) -> tuple[dict[str, list[dict]], list[Row]]:
    traces, scores, rows = [], [], []
    for i, t in enumerate(texts):
        traces.append({"id": f"t{i}", "timestamp": TS, "input": t["prompt"], "output": t["completion"]})
        scores.append({"id": f"s{i}", "timestamp": TS, "trace_id": f"t{i}", "name": "feedback", "value": "1",
                       "data_type": "BOOLEAN"})
        rows.append(Row(f"t{i}", {"prompt": t["prompt"], "completion": t["completion"]}, canonical_ids(f"s{i}")))
    observations = [{"id": "o-none", "trace_id": "t-none", "start_time": TS, "input": "q", "output": "a"}]
    return {"traces": traces, "observations": observations, "scores": scores}, rows


def comparisons(texts: list[dict[str, Any]]) -> tuple[dict[str, list[dict]], list[Row]]:
    """Answer a preferred over answer b: the stored pair holds a as chosen."""
    records, rows = [], []
    for i, t in enumerate(texts):
        rid = f"k{i}"
        records.append({"id": rid, "ts": TS, "prompt": t["prompt"], "answer_a": t["chosen"], "answer_b": t["rejected"],
                        "winner": "a"})
        rows.append(Row(rid, {"prompt": t["prompt"], "chosen": t["chosen"], "rejected": t["rejected"]},
                        canonical_ids(rid)))
    return {"comparisons": records}, rows


SHAPE_ROWS = {
    "comparisons": comparisons,
    "preference": single_table("preference", ("prompt", "chosen", "rejected")),
    "unpaired": single_table("unpaired", ("prompt", "completion"), lambda i: {"label": "up"}),
    "ratings": single_table("ratings", ("prompt", "completion"), lambda i: {"score": "5"}),
    "corrections": single_table("corrections", ("prompt", "original", "corrected")),
    "transcripts": transcripts,
    "message_trees": message_trees,
    "events": events,
    "langfuse": langfuse,
}
FIELDS = ("prompt", "chosen", "rejected", "completion", "original", "corrected")


@st.composite
def examples(draw: Any) -> tuple[str, list[dict[str, Any]]]:
    shape = draw(st.sampled_from(sorted(SHAPE_ROWS)))
    n = draw(st.integers(1, 3))
    return shape, [{f: draw(VALUE) for f in FIELDS} for _ in range(n)]


# ------------------------------------------------------------------------------------- what is stored
def stored_texts(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """Canonical rows by event id: their prompt's turn texts and answer texts."""
    out: dict[str, dict[str, Any]] = {}
    for event_id, prompt, chosen, rejected in con.execute(
            "SELECT event_id, prompt, chosen, rejected FROM pairs").fetchall():
        out[event_id] = {"prompt": [t["content"] for t in prompt], "chosen": chosen, "rejected": rejected}
    for event_id, prompt, completion in con.execute("SELECT event_id, prompt, completion FROM unpaired").fetchall():
        out[event_id] = {"prompt": [t["content"] for t in prompt], "completion": completion}
    for event_id, prompt, completion in con.execute("SELECT event_id, prompt, completion FROM ranks").fetchall():
        out[event_id] = {"prompt": [t["content"] for t in prompt], "completion": completion}
    return out


def prompt_turns(raw: Any) -> list[str] | None:
    """The prompt's turn texts as the store holds them: the shape's reading of it, each turn scrubbed."""
    conversation = as_conversation(decoded(raw))
    return None if conversation is None else [scrub_text(t["content"]) for t in json.loads(conversation)]


def expected(shape: str, row: Row, stored: dict[str, Any]) -> dict[str, Any]:
    """What a stored canonical row of this input row must hold (only the keys it holds are compared)."""
    t = {k: decoded(v) for k, v in row.texts.items()}
    if shape == "transcripts":
        turns, chosen, rejected, _ = split_pair(scrub_text(t["chosen"]), scrub_text(t["rejected"]))
        return {"prompt": [turn["content"] for turn in turns or []], "chosen": chosen, "rejected": rejected}
    want: dict[str, Any] = {"prompt": prompt_turns(row.texts["prompt"])}
    if shape == "message_trees":
        want["prompt"] = [scrub_text(t["prompt"])]
    if shape == "corrections":
        want.update(chosen=scrub_text(t["corrected"]), rejected=scrub_text(t["original"]))
    for field in ("chosen", "rejected", "completion"):
        if field in t:
            want[field] = scrub_text(t[field])
    if shape == "message_trees":
        want["completion"] = want.pop("chosen", want.pop("rejected", None))
    return {k: v for k, v in want.items() if k in stored}


def quarantined_ids(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Every id a quarantined row names (its event id, its key, or a top-level value of its payload) -> its reason."""
    found: dict[str, str] = {}
    for reason, event_id, key, payload in con.execute(
            "SELECT reason, event_id, key, payload::VARCHAR FROM quarantine").fetchall():
        values = json.loads(payload) if payload else {}
        ids = [values.get(k) for k in ("id", "message_id", "request_id", "event_id")] if isinstance(values, dict) else []
        for value in [event_id, key, *ids]:
            if isinstance(value, str):
                found.setdefault(value, reason)
    return found


def check(shape: str, rows: list[Row], store: FeedbackStore) -> None:
    con = store.con
    stored = stored_texts(con)
    quarantined = quarantined_ids(con)
    assert all(reason and "\n" not in reason for reason in quarantined.values())
    contexts = [s["prompt"] for s in stored.values()]
    for row in rows:
        hits = [stored[e] for e in row.event_ids if e in stored]
        for hit in hits:  # stored: exactly its text, placeholders aside
            assert hit == {**hit, **expected(shape, row, hit)}, (row, hit)
        if shape == "message_trees" and not row.event_ids and not hits:  # a root is used as its answers' prompt
            hits = [c for c in contexts if c == [scrub_text(decoded(row.texts["prompt"]))]]
        named = [k for k in (row.id, *row.event_ids) if k in quarantined]
        assert hits or named, (row, quarantined)
        reason = quarantined[named[0]] if named else None
        if not hits and all(is_plain(v) for v in row.texts.values()):
            assert reason is not None and (reason.startswith("duplicate of") or "identical" in reason
                                           or "no preference signal" in reason or "reply below" in reason), (row, reason)


# ------------------------------------------------------------------------------------------- writing
def _column_type(values: list[Any]) -> pa.DataType | None:
    if any(isinstance(v, bytes) for v in values):
        return pa.binary()
    return pa.string() if any(isinstance(v, str) for v in values) or all(v is None for v in values) else None


def arrow_table(records: list[dict[str, Any]], nul_as_bytes: bool = False) -> pa.Table:
    names = list(dict.fromkeys(k for r in records for k in r))
    columns = {}
    for name in names:
        values = [r.get(name) for r in records]
        if nul_as_bytes and any(isinstance(v, str) and "\x00" in v for v in values):  # PostgreSQL text holds no NUL
            values = [v.encode() if isinstance(v, str) else v for v in values]
        kind = _column_type(values)
        columns[name] = pa.array([v.encode() if kind == pa.binary() and isinstance(v, str) else v for v in values], kind)
    return pa.table(columns)


def _json_value(value: Any) -> str:
    if isinstance(value, bytes):  # the bytes as they are, inside a JSON string
        return json.dumps(value.decode(errors="surrogateescape"), ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)


def jsonl_bytes(records: list[dict[str, Any]]) -> bytes:
    lines = ("{" + ", ".join(f"{json.dumps(k)}: {_json_value(v)}" for k, v in r.items()) + "}" for r in records)
    return "".join(line + "\n" for line in lines).encode(errors="surrogateescape")


def csv_bytes(records: list[dict[str, Any]]) -> bytes:
    names = list(dict.fromkeys(k for r in records for k in r))

    def cell(v: Any) -> str:
        if v is None:
            return ""
        text = v.decode(errors="surrogateescape") if isinstance(v, bytes) else str(v)
        return '"' + text.replace('"', '""') + '"'
    lines = [",".join(names)] + [",".join(cell(r.get(n)) for n in names) for r in records]
    return "".join(line + "\n" for line in lines).encode(errors="surrogateescape")


def write_files(folder: Path, tables: dict[str, list[dict]], fmt: str) -> None:
    for table, records in tables.items():
        path = folder / f"{table}.{fmt}"
        if fmt == "jsonl":
            path.write_bytes(jsonl_bytes(records))
        elif fmt == "csv":
            path.write_bytes(csv_bytes(records))
        else:
            pq.write_table(arrow_table(records), path)


@dataclass
class Family:
    name: str
    write: Callable[[Path, str, dict[str, list[dict]]], tuple[Any, dict[str, Any], dict[str, dict[str, str]]]]


def _files(fmt: str):
    def write(folder: Path, prefix: str, tables: dict[str, list[dict]]):
        write_files(folder, tables, fmt)
        path = str(folder / f"{{table}}.{fmt}")
        return FilesConnector(FilesSettings(path=path)), {"path": path}, {}
    return write


def _duckdb(folder: Path, prefix: str, tables: dict[str, list[dict]]):
    path = folder / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    try:
        for table, records in tables.items():
            con.register("rows_in", arrow_table(records))
            con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM rows_in')
            con.unregister("rows_in")
    finally:
        con.close()
    return DuckDBConnector(DuckDBSettings(path=path)), {"path": str(path)}, {}


# ------------------------------------------------------------------------------------------- running
def run_example(family: str, shape: str, texts: list[dict[str, Any]], pg: Any = None) -> None:
    tables, rows = SHAPE_ROWS[shape](texts)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        mapping: dict[str, dict[str, str]] = {}
        if family == "postgres":
            connector, options, mapping = pg(shape, tables)
        elif family == "duckdb":
            connector, options, mapping = _duckdb(folder, "", tables)
        else:
            connector, options, mapping = _files(family)(folder, "", tables)
        kind = {"postgres": "postgres", "duckdb": "duckdb"}.get(family, "files")
        source = SourceSettings(name=SOURCE, connector=kind, options=options, shape=shape, mapping=mapping)
        with FeedbackStore(folder / "store.duckdb") as store:
            store.ingest(source, connector, settings=IngestSettings(max_bad_share=1.0, max_text_chars=MAX_CHARS))
            check(shape, rows, store)


PROPERTY = settings(max_examples=12, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


@pytest.mark.slow
@pytest.mark.parametrize("family", ["jsonl", "csv", "parquet", "duckdb"])
@PROPERTY
@given(examples())
def test_every_row_is_stored_as_written_or_quarantined_with_a_reason(family, example):
    shape, texts = example
    run_example(family, shape, texts)


@pytest.fixture(scope="module")
def pg_tables() -> Iterator[Callable]:
    with postgres_database() as name:
        url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
        with writable("postgres", url) as con:
            def write(shape: str, tables: dict[str, list[dict]]):
                prefix = f"t{uuid.uuid4().hex[:10]}_"
                for table, records in tables.items():
                    con.register("rows_in", arrow_table(records, nul_as_bytes=True))
                    con.execute(f'CREATE TABLE db."{prefix}{table}" AS SELECT * FROM rows_in')
                    con.unregister("rows_in")
                mapping = {i.name: {"table": prefix + i.default_table} for i in SHAPES[shape].inputs}
                return PostgresConnector(PostgresSettings(dsn=url)), {"dsn": url}, mapping
            yield write


@pytest.mark.slow
@PROPERTY
@given(example=examples())
def test_every_row_read_from_postgresql_is_stored_as_written_or_quarantined(pg_tables, example):
    shape, texts = example
    run_example("postgres", shape, texts, pg_tables)


@pytest.mark.parametrize("family", ["jsonl", "csv", "parquet", "duckdb"])
@pytest.mark.parametrize("shape", sorted(SHAPE_ROWS))
def test_tricky_text_through_each_shape_and_family(family, shape):
    """Every piece above at least once per shape and family, whatever the random draws gave."""
    texts = [{f: PIECES[(i * len(FIELDS) + j) % len(PIECES)] + f" {i}{j} " + PIECES[(i + j) % len(PIECES)]
              for j, f in enumerate(FIELDS)} for i in range(len(PIECES) // len(FIELDS) + 1)]
    texts.append({f: b"caf\xe9 " + f.encode() for f in FIELDS})
    run_example(family, shape, texts)
