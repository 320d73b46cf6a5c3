"""Real exports through the files connector: one bad value spoils one row, never a file or a source.

A row with NaN, Infinity, an object where text belongs, invalid UTF-8, a broken timestamp, no key or
broken JSON is quarantined with a one-line reason (naming its line where the file could not be read) and
the value it had; every other row lands as written. A source that fails entirely is named and the other
sources still load; `alignloop ingest` never prints a traceback. PII placeholders go into decoded text,
never into its JSON encoding.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from alignloop import stages
from alignloop.config import IngestSettings, SourceSettings, settings_from_dict
from alignloop.connectors.files import FilesConnector, FilesSettings
from alignloop.errors import ConfigError, TerminalError
from alignloop.ingest.store import FeedbackStore

REPO = Path(__file__).resolve().parents[2]


def good_row(i: int) -> dict[str, Any]:
    return {"id": f"r{i}", "ts": f"2026-11-02T10:{i:02d}:00Z", "prompt": f"Question {i}?",
            "completion": f"Answer {i}.", "label": "up" if i % 2 else "down"}


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    """Each item a dict (written as JSON) or bytes (written as they are: a broken line)."""
    path.write_bytes(b"".join((x if isinstance(x, bytes) else json.dumps(x).encode()) + b"\n" for x in lines))
    return path


def ingest(tmp_path: Path, path: Path, shape: str = "unpaired", max_bad_share: float = 1.0, **kw: Any):
    source = SourceSettings(name="export", connector="files", options={"path": str(path)}, shape=shape, **kw)
    store = FeedbackStore(tmp_path / "store.duckdb")
    result = store.ingest(source, FilesConnector(FilesSettings(path=str(path))),
                          settings=IngestSettings(max_bad_share=max_bad_share))
    return store, result


# One bad row of each kind, as a JSONL line, and the reason it is quarantined with.
BAD_ROWS = {
    "nan-label": ('{"id": "bad", "ts": "2026-11-02T11:00:00Z", "prompt": "Q?", "completion": "A.", "label": NaN}',
                  "label nan is not a thumbs value"),
    "nan-text": ('{"id": "bad", "ts": "2026-11-02T11:00:00Z", "prompt": "Q?", "completion": NaN, "label": "up"}',
                 "completion is NaN, not text"),
    "infinite-ts": ('{"id": "bad", "ts": Infinity, "prompt": "Q?", "completion": "A.", "label": "up"}',
                    "ts inf is not a timestamp"),
    "object-in-text": ('{"id": "bad", "ts": "2026-11-02T11:00:00Z", "prompt": "Q?", "completion": {"text": "hi"}, '
                       '"label": "up"}', "completion is an object, not text"),
    "list-in-text": ('{"id": "bad", "ts": "2026-11-02T11:00:00Z", "prompt": "Q?", "completion": ["hi"], '
                     '"label": "up"}', "completion is a list, not text"),
    "bad-timestamp": ('{"id": "bad", "ts": "next tuesday", "prompt": "Q?", "completion": "A.", "label": "up"}',
                      "ts 'next tuesday' is not an ISO-8601 timestamp"),
    "missing-key": ('{"id": null, "ts": "2026-11-02T11:00:00Z", "prompt": "Q?", "completion": "A.", "label": "up"}',
                    "id is missing"),
    "invalid-utf8": (b'{"id": "bad", "ts": "2026-11-02T11:00:00Z", "prompt": "Q?", "completion": "caf\xe9", '
                     b'"label": "up"}', "line 6 of export.jsonl is not valid UTF-8 (its bytes are kept as \\xNN escapes)"),
    "broken-json": ('{"id": "bad", "ts": "2026-11-02T11:00:00Z", "prompt": "Q?", "completion": "A."',
                    "line 6 of export.jsonl is not valid JSON (Expecting ',' delimiter, column 79)"),
    "not-an-object": ('["a", "list"]', "line 6 of export.jsonl is not a JSON object (a list)"),
}


@pytest.mark.parametrize("kind", list(BAD_ROWS))
def test_one_bad_row_of_each_kind_is_quarantined_with_a_one_line_reason_and_the_rest_lands(tmp_path, kind):
    line, reason = BAD_ROWS[kind]
    rows: list[Any] = [good_row(i) for i in range(20)]
    rows.insert(5, line.encode() if isinstance(line, str) else line)
    store, result = ingest(tmp_path, write_jsonl(tmp_path / "export.jsonl", rows))
    with store:
        got = store.con.execute("SELECT completion, label FROM unpaired ORDER BY completion").fetchall()
        quarantined = store.con.execute("SELECT reason, payload FROM quarantine").fetchall()
    assert got == sorted((f"Answer {i}.", bool(i % 2)) for i in range(20))
    [(got_reason, _)] = quarantined
    assert got_reason.startswith(reason) and "\n" not in got_reason
    assert (result.rows_read, result.unpaired_added, result.quarantined) == ({"rows": 21}, 20, 1)
    payload = json.loads(quarantined[0][1])
    if kind == "invalid-utf8":  # the value it had, its bad byte written as an escape
        assert payload["completion"] == "caf\\xe9"
    elif kind == "object-in-text":
        assert json.loads(payload["completion"]) == {"text": "hi"}


def test_a_text_column_with_one_object_keeps_every_other_text_as_written(tmp_path):
    """DuckDB types such a column JSON; its strings must not keep their quotes, nor "" pass as non-empty."""
    rows = [{"prompt": "What is 2 + 2?", "completion": 4, "label": "up"},
            {"prompt": "Say nothing.", "completion": "", "label": "down"},
            {"prompt": "Greet me.", "completion": {"text": "hello"}, "label": "up"},
            {"prompt": "Quote me.", "completion": '"quoted" \\ back', "label": "up"},
            {"prompt": "Greet me.", "completion": "hello", "label": "up"}]
    store, result = ingest(tmp_path, write_jsonl(tmp_path / "mixed.jsonl", rows))
    with store:
        got = store.con.execute("SELECT prompt[1].content, completion FROM unpaired ORDER BY completion").fetchall()
        reasons = dict(store.quarantine_reasons())
    assert got == [("Quote me.", '"quoted" \\ back'), ("What is 2 + 2?", "4"), ("Greet me.", "hello")]
    assert reasons == {"completion is an object, not text": 1, "completion is empty": 1}


def test_a_correction_identical_to_its_original_is_no_pair_in_a_mixed_column(tmp_path):
    rows = [{"prompt": "Fix it.", "original": "Same text.", "corrected": "Same text."},
            {"prompt": "Fix that.", "original": {"draft": 1}, "corrected": "Better."},
            {"prompt": "Fix this.", "original": "Worse.", "corrected": "Better."}]
    store, _ = ingest(tmp_path, write_jsonl(tmp_path / "edits.jsonl", rows), shape="corrections")
    with store:
        pairs = store.con.execute("SELECT chosen, rejected FROM pairs").fetchall()
        reasons = dict(store.quarantine_reasons())
    assert pairs == [("Better.", "Worse.")]
    assert reasons == {"corrected and original are identical": 1, "original is an object, not text": 1}


def test_events_rows_of_a_mixed_column_and_broken_lines_are_quarantined_one_by_one(tmp_path):
    """The events shape stages the source's columns as they are: the same guarantees, checked in SQL."""
    chat = json.dumps([{"role": "user", "content": "Hi?"}])
    gens: list[Any] = [{"request_id": f"g{i}", "ts": f"2026-11-02T10:{i:02d}:00Z", "user_id": "u1", "model_version": "v1",
                        "messages": chat, "response": f"Hello {i}!"} for i in range(6)]
    gens[1]["response"] = {"text": "an object"}
    gens[2] = b'{"request_id": "g2", "ts": "2026-11-02T10:02:00Z", "messages": "[]", "response": "caf\xe9"}'
    gens[3] = b'{"request_id": "g3", "ts": '
    gens[4]["ts"] = "not a time"
    fbs = [{"event_id": f"f{i}", "request_id": f"g{i}", "ts": f"2026-11-02T10:{i:02d}:30Z", "user_id": "u2",
            "kind": "thumb", "value": "up", "other_request_id": None} for i in (0, 5)]
    write_jsonl(tmp_path / "generations.jsonl", gens)
    write_jsonl(tmp_path / "feedback_events.jsonl", fbs)
    path = str(tmp_path / "{table}.jsonl")
    source = SourceSettings(name="prod", connector="files", options={"path": path})
    with FeedbackStore(tmp_path / "store.duckdb") as store:
        result = store.ingest(source, FilesConnector(FilesSettings(path=path)), settings=IngestSettings(max_bad_share=1))
        answers = store.con.execute("SELECT completion FROM unpaired ORDER BY completion").fetchall()
        reasons = dict(store.quarantine_reasons())
        responses = store.con.execute("SELECT response FROM raw_events_generations ORDER BY ALL").fetchall()
    assert answers == [("Hello 0!",), ("Hello 5!",)]
    assert responses == [("Hello 0!",), ("Hello 5!",)]  # no JSON quotes
    assert reasons == {"response is an object, not text": 1, "ts is not a timestamp": 1,
                       "line 3 of generations.jsonl is not valid UTF-8 (its bytes are kept as \\xNN escapes)": 1,
                       "line 4 of generations.jsonl is not valid JSON (Expecting value, column 28)": 1}
    assert result.rows_read == {"generations": 6, "feedback": 2}


# ------------------------------------------------------------------------------- files of differing types
CHAT = json.dumps([{"role": "user", "content": "Hi?"}])


def generation(i: int, ts: Any, **kw: Any) -> dict[str, Any]:
    return {"request_id": f"g{i}", "ts": ts, "user_id": "u1", "model_version": "v1", "messages": CHAT,
            "response": f"Hello {i}!"} | kw


def feedback(i: int, ts: Any) -> dict[str, Any]:
    return {"event_id": f"f{i}", "request_id": f"g{i}", "ts": ts, "user_id": "u2", "kind": "thumb", "value": "up",
            "other_request_id": None}


def ingest_events(tmp_path: Path, generations: dict[str, list[Any]], feedbacks: dict[str, list[Any]],
                  batch_size: int = 50_000, **source: Any):
    """Land JSONL files (name -> rows) of both events inputs through the files connector."""
    for table, files in (("generations", generations), ("feedback_events", feedbacks)):
        (tmp_path / table).mkdir()
        for name, rows in files.items():
            write_jsonl(tmp_path / table / name, rows)
    path = str(tmp_path / "{table}" / "*.jsonl")
    settings = SourceSettings(name="prod", connector="files", options={"path": path}, **source)
    store = FeedbackStore(tmp_path / "store.duckdb")
    result = store.ingest(settings, FilesConnector(FilesSettings(path=path, batch_size=batch_size)),
                          settings=IngestSettings(max_bad_share=1))
    return store, result


# Per input: its rows (index, ts), its landing table, key column, and the reason a bad ts is quarantined with.
TYPED_INPUTS = {
    "events-generations": (generation, "raw_events_generations", "request_id", "ts is not a timestamp"),
    "events-feedback": (feedback, "raw_events_feedback", "event_id", "ts is not a timestamp"),
    "preference": (lambda i, ts: {"id": f"p{i}", "ts": ts, "prompt": f"Q{i}?", "chosen": "Yes.", "rejected": "No."},
                   "raw_preference", "id", "ts 'not a time' is not an ISO-8601 timestamp"),
    "unpaired": (lambda i, ts: good_row(i) | {"ts": ts}, "raw_unpaired", "id",
                 "ts 'not a time' is not an ISO-8601 timestamp"),
}


@pytest.mark.parametrize("kind", list(TYPED_INPUTS))
def test_two_files_whose_ts_types_differ_land_together_and_only_the_bad_ts_is_quarantined(tmp_path, kind):
    """DuckDB reads a.jsonl's ts as TIMESTAMP and b.jsonl's (a bad value among them) as text: every good row
    of both lands at the instant written (an offset converted to UTC), the bad row alone is quarantined."""
    row, table, key, reason = TYPED_INPUTS[kind]
    a = [row(i, f"2026-11-02T10:0{i}:00Z") for i in range(3)]
    b = [row(i, f"2026-11-02T12:0{i}:00+02:00") for i in range(3, 6)] + [row(99, "not a time")]
    if kind.startswith("events"):
        gens = {"a.jsonl": a, "b.jsonl": b} if kind == "events-generations" else \
            {"g.jsonl": [generation(i, f"2026-11-02T09:0{i}:00Z") for i in range(6)]}
        fbs = {"a.jsonl": a, "b.jsonl": b} if kind == "events-feedback" else {}
        store, _ = ingest_events(tmp_path, gens, fbs)
    else:
        write_jsonl(tmp_path / "a.jsonl", a)
        write_jsonl(tmp_path / "b.jsonl", b)
        store, _ = ingest(tmp_path, tmp_path / "*.jsonl", shape=kind)
    with store:
        usable = "" if kind.startswith("events") else "WHERE prep_problem IS NULL"  # the shape quarantines the rest
        landed = store.con.execute(f"SELECT {key}, ts FROM {table} {usable} ORDER BY ts").fetchall()
        quarantined = store.con.execute("SELECT payload, reason FROM quarantine").fetchall()
    keys = [row(i, None)[key] for i in range(6)]
    assert landed == [(k, datetime(2026, 11, 2, 10, i)) for i, k in enumerate(keys)]
    assert [(json.loads(payload)[key], why) for payload, why in quarantined] == [(row(99, None)[key], reason)]


@pytest.mark.parametrize("versions", [(3, 2.5, "01"), (2.5, 3, "01"), ("01", 3, 2.5)])
def test_a_column_of_integers_in_one_file_and_floats_or_text_in_others_lands_each_value_as_written(tmp_path,
                                                                                                    versions):
    """model_version is BIGINT in one file, DOUBLE in another and text in a third: each lands as its own text
    (3 never becomes 3.0, 2.5 never 2 or 3, "01" never 1), in any order of the files."""
    gens = {f"{n}.jsonl": [generation(n, f"2026-11-02T10:0{n}:00Z", model_version=v)] for n, v in enumerate(versions)}
    store, result = ingest_events(tmp_path, gens, {})
    with store:
        landed = store.con.execute("SELECT request_id, model_version FROM raw_events_generations ORDER BY ALL"
                                   ).fetchall()
    assert landed == [(f"g{n}", str(v)) for n, v in enumerate(versions)]
    assert (result.rows_read["generations"], result.quarantined) == (3, 0)


def test_an_events_row_with_a_bad_ts_after_the_rows_duckdb_samples_spoils_only_that_row(tmp_path):
    """Past DuckDB's 20,480-row sample the file is read again row by row from a copy whose types come from
    every row (ts as text, response as JSON documents), after batches read with ts as a timestamp."""
    n = 21_000
    gens: list[Any] = [generation(i, "2026-11-02T10:00:00Z") for i in range(n)]
    gens.append(generation(n, "next tuesday"))
    gens.append(generation(n + 1, "2026-11-02T10:00:00Z", response={"text": "an object"}))
    gens.append(generation(n + 2, "2026-11-02T11:30:00+01:00"))
    store, result = ingest_events(tmp_path, {"late.jsonl": gens}, {}, batch_size=4096)
    with store:
        [(landed, distinct, last)] = store.con.execute(
            "SELECT count(*), count(DISTINCT request_id), max(ts) FROM raw_events_generations").fetchall()
        quarantined = store.con.execute("SELECT key, reason FROM quarantine ORDER BY key").fetchall()
        [(response,)] = store.con.execute(
            f"SELECT response FROM raw_events_generations WHERE request_id = 'g{n + 2}'").fetchall()
    assert quarantined == [(f"g{n}", "ts is not a timestamp"), (f"g{n + 1}", "response is an object, not text")]
    assert (landed, distinct, last) == (n + 1, n + 1, datetime(2026, 11, 2, 10, 30))
    assert response == f"Hello {n + 2}!"  # no JSON quotes
    assert result.rows_read["generations"] == n + 3


def test_an_integer_cursor_column_read_as_text_in_another_file_lands_every_row(tmp_path):
    """sources[].cursor names `seq`: integers in a.jsonl, text in b.jsonl (one not a number)."""
    gens = {"a.jsonl": [generation(i, "2026-11-02T10:00:00Z", seq=i) for i in range(3)],
            "b.jsonl": [generation(3, "2026-11-02T10:00:00Z", seq="x3"), generation(4, "2026-11-02T10:00:00Z", seq="7")]}
    store, result = ingest_events(tmp_path, gens, {}, cursor={"generations": "seq"})
    with store:
        landed = store.con.execute("SELECT request_id FROM raw_events_generations ORDER BY ALL").fetchall()
    assert landed == [(f"g{i}",) for i in range(5)]
    assert (result.quarantined, result.cursors["generations"]) == (0, "7")


def test_two_unreadable_lines_are_two_quarantined_rows(tmp_path):
    rows: list[Any] = [good_row(i) for i in range(8)]
    rows[2], rows[6] = b"{not json", b"{not json"
    store, result = ingest(tmp_path, write_jsonl(tmp_path / "export.jsonl.gz.jsonl", rows))
    with store:
        keys = store.con.execute("SELECT reason FROM quarantine ORDER BY reason").fetchall()
    assert [k for (k,) in keys] == [f"line {n} of export.jsonl.gz.jsonl is not valid JSON "
                                    "(Expecting property name enclosed in double quotes, column 2)" for n in (3, 7)]
    assert (result.unpaired_added, result.quarantined) == (6, 2)


def test_a_file_with_no_json_line_is_still_one_error_naming_the_format(tmp_path):
    path = tmp_path / "export.jsonl"
    path.write_text("id,prompt\n1,hello\n")
    with pytest.raises(TerminalError, match=r"could not be read as jsonl .*options\.format"):
        ingest(tmp_path, path)


# ------------------------------------------------------------------------------------------- JSON arrays
def write_json(path: Path, elements: list[Any], indent: int | None = None) -> Path:
    """A JSON array (gzipped when the name ends in .gz): each item a value (written as JSON) or bytes (written
    as they are: a bad element)."""
    items = [x if isinstance(x, bytes) else json.dumps(x, indent=indent).encode() for x in elements]
    data = b"[" + (b",\n" if indent else b", ").join(items) + b"]"
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


# One bad element of each kind, put at index 5 of an array of good rows, and the reason it is quarantined with.
BAD_ELEMENTS = {
    "invalid-utf8": (b'{"id": "bad", "ts": "2026-11-02T11:00:00Z", "prompt": "Q?", "completion": "caf\xe9", '
                     b'"label": "up"}', "element 5 of {name} is not valid UTF-8 (its bytes are kept as \\xNN escapes)"),
    "not-an-object": (b'"just text"', "element 5 of {name} is not a JSON object (a str)"),
    "a-list": (b'[{"id": "bad"}]', "element 5 of {name} is not a JSON object (a list)"),
    "nan-text": (BAD_ROWS["nan-text"][0].encode(), "completion is NaN, not text"),
    "infinite-ts": (BAD_ROWS["infinite-ts"][0].encode(), "ts inf is not a timestamp"),
    "object-in-text": (BAD_ROWS["object-in-text"][0].encode(), "completion is an object, not text"),
}


@pytest.mark.parametrize("name", ["export.json", "export.json.gz"])
@pytest.mark.parametrize("kind", list(BAD_ELEMENTS))
def test_one_bad_element_of_a_json_array_is_quarantined_by_its_index_and_the_rest_lands(tmp_path, kind, name):
    element, reason = BAD_ELEMENTS[kind]
    rows: list[Any] = [good_row(i) for i in range(20)]
    rows.insert(5, element)
    store, result = ingest(tmp_path, write_json(tmp_path / name, rows))
    with store:
        got = store.con.execute("SELECT completion, label FROM unpaired ORDER BY completion").fetchall()
        [(got_reason, payload)] = store.con.execute("SELECT reason, payload FROM quarantine").fetchall()
        [(loaded,)] = store.con.execute("SELECT count(*) FROM loaded_files").fetchall()
    assert got == sorted((f"Answer {i}.", bool(i % 2)) for i in range(20))
    assert got_reason.startswith(reason.format(name=name)) and "\n" not in got_reason
    assert (result.rows_read, result.unpaired_added, result.quarantined, loaded) == ({"rows": 21}, 20, 1, 1)
    if kind == "invalid-utf8":  # the values it had, its bad byte written as an escape
        assert json.loads(payload)["completion"] == "caf\\xe9"


def test_a_pretty_printed_json_array_with_bad_bytes_and_nan_keeps_every_other_value_as_written(tmp_path):
    """The rows are read again from a copy Python writes: text with quotes, backslashes and line breaks, NaN
    and numbers must come through that copy as they were."""
    rows: list[Any] = [good_row(i) for i in range(6)]
    rows[1]["completion"] = 'Line one\nline "two" \\ three\t\u00e9\u4e2d'
    rows[2]["completion"] = float("nan")
    rows[3]["completion"] = ""
    rows[4] = json.dumps(good_row(4), indent=2).encode().replace(b"Answer 4.", b"caf\xe9 \xff")
    store, result = ingest(tmp_path, write_json(tmp_path / "pretty.json", rows, indent=2))
    with store:
        got = store.con.execute("SELECT event_id, completion FROM unpaired ORDER BY completion").fetchall()
        reasons = dict(store.quarantine_reasons())
        [payload] = store.con.execute("SELECT payload FROM quarantine WHERE reason LIKE 'element%'").fetchone()
    assert [c for _, c in got] == ["Answer 0.", "Answer 5.", 'Line one\nline "two" \\ three\t\u00e9\u4e2d']
    assert reasons == {"completion is NaN, not text": 1, "completion is empty": 1,
                       "element 4 of pretty.json is not valid UTF-8 (its bytes are kept as \\xNN escapes)": 1}
    assert json.loads(payload)["completion"] == "caf\\xe9 \\xff"
    assert (result.rows_read, result.quarantined) == ({"rows": 6}, 3)


@pytest.mark.parametrize("name", ["late.jsonl", "late.json"])
def test_a_bad_row_after_the_rows_duckdb_samples_spoils_only_that_row_and_none_lands_twice(tmp_path, name):
    """DuckDB tells types from the first 20,480 rows and refuses a later row only once it has streamed some
    batches: the rows already given are not given again, and the refused row is quarantined on its own."""
    n = 21_000
    rows: list[Any] = [{"id": f"r{i}", "ts": "2026-11-02T10:00:00Z", "prompt": "Q?", "completion": f"Answer {i}.",
                        "label": "up"} for i in range(n)]
    rows.append({"id": "late-ts", "ts": "next tuesday", "prompt": "Q?", "completion": "A.", "label": "up"})
    rows.append(b'{"id": "late-utf8", "ts": "2026-11-02T10:00:00Z", "prompt": "Q?", "completion": "caf\xe9", '
                b'"label": "up"}')
    path = (write_jsonl if name.endswith(".jsonl") else write_json)(tmp_path / name, rows)
    source = SourceSettings(name="export", connector="files", options={"path": str(path)}, shape="unpaired")
    with FeedbackStore(tmp_path / "store.duckdb") as store:
        result = store.ingest(source, FilesConnector(FilesSettings(path=str(path), batch_size=4096)),
                              settings=IngestSettings(max_bad_share=1))
        [(landed, distinct)] = store.con.execute("SELECT count(*), count(DISTINCT event_id) FROM unpaired").fetchall()
        reasons = dict(store.quarantine_reasons())
    where = f"line {n + 2}" if name.endswith(".jsonl") else f"element {n + 1}"
    assert reasons == {"ts 'next tuesday' is not an ISO-8601 timestamp": 1,
                       f"{where} of {name} is not valid UTF-8 (its bytes are kept as \\xNN escapes)": 1}
    assert (landed, distinct, result.rows_read, result.quarantined) == (n, n, {"rows": n + 2}, 2)


def test_a_json_file_of_one_object_is_one_row_even_with_a_bad_byte(tmp_path):
    row = good_row(1) | {"prompt": "Q?\nStill the prompt.", "extra": {"nested": [1, 2.50, "x"]}}
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "one.json").write_text(json.dumps(row, indent=2))
    store, result = ingest(clean, clean / "one.json")
    with store:
        assert store.con.execute("SELECT completion FROM unpaired").fetchall() == [("Answer 1.",)]
    (tmp_path / "one.json").write_bytes(json.dumps(row, indent=2).encode().replace(b"Answer 1.", b"caf\xe9"))
    store, result = ingest(tmp_path, tmp_path / "one.json")
    with store:
        reasons = dict(store.quarantine_reasons())
    assert reasons == {"line 1 of one.json is not valid UTF-8 (its bytes are kept as \\xNN escapes)": 1}
    assert (result.rows_read, result.quarantined) == ({"rows": 1}, 1)


def test_an_empty_json_array_lands_nothing_and_is_no_error(tmp_path):
    store, result = ingest(tmp_path, write_json(tmp_path / "empty.json", []))
    with store:
        assert store.con.execute("SELECT count(*) FROM unpaired").fetchall() == [(0,)]
    assert (result.rows_read, result.quarantined) == ({"rows": 0}, 0)


def test_a_json_file_whose_syntax_breaks_fails_its_source_by_name_and_the_other_source_loads(tmp_path):
    """Its rows cannot be told apart: the file's source merges nothing, not even its good file, and says where
    the file breaks; the other source in the run still loads."""
    exports = tmp_path / "exports"
    exports.mkdir()
    write_json(exports / "a.json", [good_row(i) | {"completion": f"a {i}."} for i in range(4)])
    good = json.dumps([good_row(i) for i in range(4)], indent=2).encode()
    (exports / "b.json").write_bytes(good.replace(b'"Answer 2."', b'"Answer 2." "oops"'))
    settings = _config(tmp_path, [
        {"name": "exports", "connector": "files", "options": {"path": "exports/*.json"}, "shape": "unpaired"},
        {"name": "kept", "connector": "files", "options": {"path": _thumbs_file(tmp_path, "kept.jsonl")},
         "shape": "unpaired"}])
    with pytest.raises(TerminalError) as err:
        stages.ingest(settings)
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    assert "1 source(s) failed and merged nothing: source 'exports', input rows (table unpaired): files: " in message
    assert f"{exports / 'b.json'} is not valid JSON at line 20, column 31 (Expecting ',' delimiter" in message
    assert "fix the file there" in message and "The other sources loaded ('kept')" in message
    with FeedbackStore(settings.store_path) as store:
        assert store.con.execute("SELECT source, count(*) FROM unpaired GROUP BY ALL").fetchall() == [("kept", 5)]
        assert store.con.execute("SELECT DISTINCT source FROM loaded_files").fetchall() == [("kept",)]


# ------------------------------------------------------------------------------------------- PII
def test_an_address_after_a_newline_in_a_shared_history_is_scrubbed_and_the_row_lands(tmp_path):
    history = ("\n\nHuman: Write to my boss at\n\nperson1@email.com and call\n555-123-4567\tor card "
               "\"4111 1111 1111 1111\", escaped \\u0040 stays\n\nAssistant: Sure.\n\nHuman: Thanks")
    rows = [{"chosen": history + "\n\nAssistant: Done:\nperson1@email.com", "rejected": history + "\n\nAssistant: No."}]
    store, result = ingest(tmp_path, write_jsonl(tmp_path / "hh.jsonl", rows), shape="transcripts")
    with store:
        [(prompt, chosen, rejected)] = store.con.execute("SELECT prompt, chosen, rejected FROM pairs").fetchall()
    assert result.quarantined == 0
    assert prompt[0]["content"] == ("Write to my boss at\n\n[EMAIL] and call\n[PHONE]\tor card \"[CARD]\", "
                                    "escaped \\u0040 stays")
    assert (chosen, rejected) == ("Done:\n[EMAIL]", "No.")


def test_messages_json_is_scrubbed_in_its_strings_and_stays_valid_json(tmp_path):
    """The events shape keeps generations' messages as JSON text: placeholders go into its decoded strings,
    an address written with JSON escapes ('\\u0040' for '@') included."""
    messages = '[{"role": "user", "content": "Mail\\nbob@example.org or alice\\u0040example.com,\\tcall\\n555-123-4567"}]'
    gens = [{"request_id": "g1", "ts": "2026-11-02T10:00:00Z", "user_id": "u", "model_version": "v",
             "messages": messages, "response": "Noted."}]
    fbs = [{"event_id": "f1", "request_id": "g1", "ts": "2026-11-02T10:01:00Z", "user_id": "u", "kind": "thumb",
            "value": "up", "other_request_id": None}]
    write_jsonl(tmp_path / "generations.jsonl", gens)
    write_jsonl(tmp_path / "feedback_events.jsonl", fbs)
    path = str(tmp_path / "{table}.jsonl")
    with FeedbackStore(tmp_path / "store.duckdb") as store:
        store.ingest(SourceSettings(name="prod", connector="files", options={"path": path}),
                     FilesConnector(FilesSettings(path=path)))
        [(stored,)] = store.con.execute("SELECT messages FROM raw_events_generations").fetchall()
        [(prompt,)] = store.con.execute("SELECT prompt FROM unpaired").fetchall()
    assert json.loads(stored) == [{"role": "user", "content": "Mail\n[EMAIL] or [EMAIL],\tcall\n[PHONE]"}]
    assert prompt[0]["content"] == "Mail\n[EMAIL] or [EMAIL],\tcall\n[PHONE]"


# ------------------------------------------------------------------------------------------ sources
def _config(tmp_path: Path, sources: list[dict[str, Any]], **ingest_settings: Any) -> Any:
    return settings_from_dict({"target": "t", "base_model": {"tiny": True}, "ingest": ingest_settings,
                               "sources": sources}, base_dir=tmp_path)


def _thumbs_file(tmp_path: Path, name: str, n: int = 5) -> str:
    write_jsonl(tmp_path / name, [good_row(i) | {"completion": f"{name} {i}."} for i in range(n)])
    return name


def test_a_source_that_fails_is_named_and_the_sources_after_it_still_load(tmp_path):
    settings = _config(tmp_path, [
        {"name": "gone", "connector": "files", "options": {"path": "missing.jsonl"}, "shape": "unpaired"},
        {"name": "kept", "connector": "files", "options": {"path": _thumbs_file(tmp_path, "kept.jsonl")},
         "shape": "unpaired"}])
    with pytest.raises(TerminalError) as err:
        stages.ingest(settings)
    message = str(err.value)
    assert "source 'gone'" in message and "missing.jsonl does not exist" in message
    assert "The other sources loaded ('kept')" in message and "\n" not in message
    assert [r.source for r in err.value.results] == ["kept"]
    with FeedbackStore(settings.store_path) as store:
        assert store.con.execute("SELECT source, count(*) FROM unpaired GROUP BY ALL").fetchall() == [("kept", 5)]


def test_a_lone_failing_source_raises_its_own_error(tmp_path):
    settings = _config(tmp_path, [{"name": "gone", "connector": "files", "options": {"path": "missing.jsonl"},
                                   "shape": "unpaired"}])
    with pytest.raises(TerminalError, match=r"^source 'gone': files: .*missing\.jsonl does not exist"):
        stages.ingest(settings)


def test_failures_that_are_all_settings_are_a_settings_error(tmp_path):
    settings = _config(tmp_path, [
        {"name": "a", "connector": "files", "options": {"path": _thumbs_file(tmp_path, "a.jsonl")}, "shape": "unpaired",
         "cursor": {"rows": "ts"}},
        {"name": "b", "connector": "files", "options": {"path": _thumbs_file(tmp_path, "b.jsonl")}, "shape": "unpaired",
         "cursor": {"rows": "ts"}}])
    with pytest.raises(ConfigError, match=r"2 source\(s\) failed.*No other source loaded"):
        stages.ingest(settings)


def _cli(config: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "alignloop.cli.main", "ingest", "--config", str(config)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_cwd(config))


def tmp_cwd(config: Path) -> str:
    return str(config.parent)


def test_cli_ingest_names_source_row_and_reason_in_one_line_and_loads_the_other_sources(tmp_path):
    bad: list[Any] = [good_row(i) for i in range(4)] + [
        (line.encode() if isinstance(line, str) else line).replace(b'"bad"', f'"bad-{kind}"'.encode())
        for kind, (line, _) in BAD_ROWS.items()]
    write_jsonl(tmp_path / "bad.jsonl", bad)
    rows: list[Any] = [good_row(i) for i in range(40)]
    rows.insert(7, BAD_ROWS["invalid-utf8"][0])
    rows.insert(9, BAD_ROWS["object-in-text"][0].replace('"bad"', '"r-obj"').encode())
    write_jsonl(tmp_path / "mostly-good.jsonl", rows)
    _thumbs_file(tmp_path, "good.jsonl")
    config = tmp_path / "alignloop.yaml"
    config.write_text("store: feedback.duckdb\nbase_model: {tiny: true}\nsources:\n" + "".join(
        f"  - {{name: {n}, connector: files, options: {{path: {p}}}, shape: unpaired}}\n"
        for n, p in (("bad", "bad.jsonl"), ("gone", "missing.jsonl"), ("mostly", "mostly-good.jsonl"),
                     ("good", "good.jsonl"))))
    run = _cli(config)
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "Traceback" not in output
    [error] = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert "source 'bad': 10 of 14 new rows (71%) are bad, above ingest.max_bad_share = 0.2" in error
    assert "(e.g. row bad-" in error and "source 'gone'" in error
    assert "The other sources loaded ('mostly', 'good')" in error
    con = duckdb.connect(str(tmp_path / "feedback.duckdb"), read_only=True)
    try:
        loaded = con.execute("SELECT source, count(*) FROM unpaired GROUP BY ALL ORDER BY ALL").fetchall()
        reasons = con.execute("SELECT reason FROM quarantine WHERE source = 'mostly' ORDER BY ALL").fetchall()
    finally:
        con.close()
    assert loaded == [("good", 5), ("mostly", 40)]
    assert reasons == [("completion is an object, not text",),
                       ("line 8 of mostly-good.jsonl is not valid UTF-8 (its bytes are kept as \\xNN escapes)",)]


def test_a_json_column_of_a_duckdb_table_is_read_value_by_value(tmp_path):
    """A DuckDB column typed JSON holds documents: its strings are stored without their quotes."""
    from alignloop.connectors.duckdb_file import DuckDBConnector, DuckDBSettings

    wh = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(wh))
    con.execute("CREATE TABLE unpaired AS SELECT * FROM (VALUES ('Q1?', '\"hello\"'::JSON, 'up'), "
                "('Q2?', '{\"text\": \"hi\"}'::JSON, 'up'), ('Q3?', '42'::JSON, 'down')) AS v(prompt, completion, label)")
    con.close()
    source = SourceSettings(name="wh", connector="duckdb", options={"path": str(wh)}, shape="unpaired")
    with FeedbackStore(tmp_path / "store.duckdb") as store:
        store.ingest(source, DuckDBConnector(DuckDBSettings(path=wh)), settings=IngestSettings(max_bad_share=1))
        got = store.con.execute("SELECT completion FROM unpaired ORDER BY ALL").fetchall()
        reasons = dict(store.quarantine_reasons())
    assert got == [("42",), ("hello",)]
    assert reasons == {"completion is an object, not text": 1}
