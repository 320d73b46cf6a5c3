"""Loading guarantees: no row is silently lost, one bad row never stops a source, cursors of any
kind work on every run, and fixed, late, duplicated and conflicting rows end where they should."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from alignloop.connectors.duckdb_file import DuckDBConnector, DuckDBSettings
from alignloop.config import IngestSettings, SourceSettings
from alignloop.errors import ConfigError, DataError
from alignloop.ingest.store import FeedbackStore
from tests.conftest import T0, chat

GEN_COLS = "request_id VARCHAR, ts {ts}, user_id VARCHAR, model_version VARCHAR, messages VARCHAR, response {resp}"
FB_COLS = "event_id VARCHAR, request_id VARCHAR, ts {ts}, user_id VARCHAR, kind VARCHAR, value VARCHAR, " \
          "other_request_id VARCHAR{extra}"


def warehouse(path: Path, gens: list[tuple], fbs: list[tuple], *, ts: str = "TIMESTAMP", resp: str = "VARCHAR",
              extra: str = "") -> Path:
    """A warehouse without keys or NOT NULLs, so broken rows can exist; appends when it exists."""
    con = duckdb.connect(str(path))
    con.execute(f"CREATE TABLE IF NOT EXISTS generations ({GEN_COLS.format(ts=ts, resp=resp)})")
    con.execute(f"CREATE TABLE IF NOT EXISTS feedback_events ({FB_COLS.format(ts=ts, extra=extra)})")
    for table, rows in (("generations", gens), ("feedback_events", fbs)):
        for row in rows:
            con.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(row))})", list(row))
    con.close()
    return path


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def source(wh: Path, **kw) -> tuple[SourceSettings, DuckDBConnector]:
    return (SourceSettings(name="prod", options={"path": str(wh)}, **kw),
            DuckDBConnector(DuckDBSettings(path=wh)))


def good_gen(rid: str, minute: float, text: str = "Hi?", answer: str = "Hello!") -> tuple:
    return (rid, at(minute), "u1", "v1", chat(text), answer)


def reasons(store: FeedbackStore) -> dict[str, int]:
    return dict(store.quarantine_reasons())


# ------------------------------------------------------------------------------- no silent loss
def test_far_future_row_is_quarantined_and_does_not_move_the_cursor(tmp_path):
    wh = warehouse(tmp_path / "wh.duckdb", [good_gen("r1", 0), good_gen("r2099", 0)],
                   [("f1", "r1", at(1), "u1", "thumb", "up", None)])
    con = duckdb.connect(str(wh))
    con.execute("UPDATE generations SET ts = TIMESTAMP '2099-01-01' WHERE request_id = 'r2099'")
    con.close()
    src, conn = source(wh)
    now = datetime(2026, 11, 1)
    settings = IngestSettings(max_bad_share=0.5, lookback=timedelta(0))
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        store.ingest(src, conn, now=now, settings=settings)
        assert reasons(store) == {"ts is in the future (later than now + ingest.future_skew)": 1}
        position = datetime.fromisoformat(store.cursor_position("prod", "generations").value)
        assert position == at(0)
        # A row written after the first run, with an ordinary timestamp, is still read.
        warehouse(wh, [good_gen("r3", 60, "Bye?", "Goodbye!")], [("f3", "r3", at(61), "u2", "thumb", "up", None)])
        second = store.ingest(src, conn, now=now, settings=settings)
        assert second.unpaired_added == 1
        assert store.counts()["unpaired"] == 2


def test_late_rows_below_the_cursor_are_read_by_the_default_look_back(tmp_path):
    wh = warehouse(tmp_path / "wh.duckdb", [good_gen("r1", 0), good_gen("r2", 120)],
                   [("f1", "r1", at(130), "u1", "thumb", "up", None)])
    src, conn = source(wh)
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        store.ingest(src, conn, settings=IngestSettings())
        # Committed late upstream: timestamps below both cursors (by 2 hours), well inside a day.
        warehouse(wh, [good_gen("r_late", 5, "Late?", "Here.")], [("f_late", "r_late", at(10), "u3", "thumb", "down", None)])
        second = store.ingest(src, conn, settings=IngestSettings())
        assert (second.unpaired_added, second.duplicates) == (1, 3)  # r1, r2 and f1 re-read, skipped by key
        assert store.counts()["unpaired"] == 2


def test_timestamptz_source_in_another_session_zone_skips_nothing(tmp_path):
    wh = tmp_path / "wh.duckdb"
    warehouse(wh, [], [], ts="TIMESTAMPTZ")

    class NewYorkSession(DuckDBConnector):
        def _connect(self):
            con = super()._connect()
            con.execute("SET TimeZone = 'America/New_York'")
            return con

    def add(rid: str, fid: str, utc: str) -> None:
        con = duckdb.connect(str(wh))
        con.execute("INSERT INTO generations VALUES (?, ?::TIMESTAMPTZ, 'u1', 'v1', ?, 'Hello!')",
                    [rid, utc + "+00", chat("Hi " + rid)])
        con.execute("INSERT INTO feedback_events VALUES (?, ?, ?::TIMESTAMPTZ, 'u1', 'thumb', 'up', NULL)",
                    [fid, rid, utc + "+00"])
        con.close()

    add("r1", "f1", "2026-10-01 12:00:00")
    src = SourceSettings(name="prod", options={"path": str(wh)})
    conn = NewYorkSession(DuckDBSettings(path=wh))
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        store.ingest(src, conn, lookback=timedelta(0))
        assert store.con.execute("SELECT ts FROM unpaired").fetchall() == [(datetime(2026, 10, 1, 12),)]
        # Half an hour later in UTC: a naive bound read as New York time (17:00 UTC) would skip it.
        add("r2", "f2", "2026-10-01 12:30:00")
        second = store.ingest(src, conn, lookback=timedelta(0))
        assert second.unpaired_added == 1
        assert store.cursor_position("prod", "feedback").value == "2026-10-01T12:30:00"


# ------------------------------------------------------------------------ bad rows never stop a source
def test_each_kind_of_bad_row_is_quarantined_with_its_reason_and_the_rest_loads(tmp_path):
    long_answer = "x" * 501
    gens = [good_gen(f"ok{i}", i, f"Q{i}?") for i in range(12)] + [
        (None, at(20), "u1", "v1", chat("No key?"), "A."),
        ("r_null_ts", None, "u1", "v1", chat("When?"), "A."),
        ("r_inf", "infinity", "u1", "v1", chat("Forever?"), "A."),
        ("r_ctrl", at(21), "u1", "v1", chat("Bell?"), "ding\x07dong"),
        ("r_blank", at(22), "u1", "v1", chat("Blank?"), " \t\n "),
        ("r_long", at(23), "u1", "v1", chat("Long?"), long_answer),
        ("r_norole", at(24), "u1", "v1", json.dumps([{"content": "Who am I?"}]), "Nobody."),
    ]
    fbs = [(f"f{i}", f"ok{i}", at(30 + i), "u1", "thumb", "up", None) for i in range(12)] + [
        ("f_norole", "r_norole", at(50), "u1", "thumb", "up", None),
    ]
    wh = warehouse(tmp_path / "wh.duckdb", gens, fbs)
    src, conn = source(wh)
    settings = IngestSettings(max_text_chars=500, max_bad_share=0.5)
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        result = store.ingest(src, conn, settings=settings)
        got = reasons(store)
        rows = store.con.execute("SELECT reason, payload, batch_id FROM quarantine ORDER BY reason").fetchall()
    assert got == {
        "request_id is missing": 1,
        "ts is missing": 1,
        "ts is infinite": 1,
        "response contains control characters": 1,
        "response is blank (whitespace only)": 1,
        "response is longer than ingest.max_text_chars (500)": 1,
        "a message turn has no role, or one other than system, user, assistant": 1,
    }
    assert result.unpaired_added == 12
    assert {b for _, _, b in rows} == {result.batch_id}
    payloads = {reason: json.loads(p) for reason, p, _ in rows}
    assert payloads["response contains control characters"]["response"] == "ding\x07dong"
    assert payloads["ts is infinite"]["request_id"] == "r_inf"


def test_unparseable_text_timestamp_and_invalid_utf8_are_quarantined(tmp_path):
    wh = warehouse(tmp_path / "wh.duckdb", [], [], ts="VARCHAR", resp="BLOB")
    con = duckdb.connect(str(wh))
    rows = [(f"ok{i}", f"2026-10-01 12:0{i}:00", "u1", "v1", chat(f"Q{i}?"), f"A{i}".encode()) for i in range(5)]
    rows += [("r_bad_ts", "yesterday-ish", "u1", "v1", chat("Q?"), b"A"),
             ("r_bad_utf8", "2026-10-01 12:09:00", "u1", "v1", chat("Q?"), b"caf\xe9")]
    con.executemany("INSERT INTO generations VALUES (?, ?, ?, ?, ?, ?)", rows)
    con.executemany("INSERT INTO feedback_events VALUES (?, ?, ?, 'u1', 'thumb', 'up', NULL)",
                    [(f"f{i}", f"ok{i}", f"2026-10-01T13:0{i}:00Z") for i in range(5)])
    con.close()
    src, conn = source(wh)
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        result = store.ingest(src, conn, settings=IngestSettings(max_bad_share=0.5))
        assert reasons(store) == {"ts is not a timestamp": 1, "response is not valid UTF-8": 1}
        assert result.unpaired_added == 5
        bad = store.con.execute("SELECT payload->>'response' FROM quarantine WHERE key = 'r_bad_utf8'").fetchone()[0]
        assert bad == "caf\\xE9"  # the bytes as read, not dropped


def test_too_many_bad_rows_fail_the_run_and_merge_nothing(tmp_path):
    gens = [good_gen("ok", 0)] + [(f"b{i}", at(1), "u1", "v1", chat("Q?"), "\t") for i in range(3)]
    wh = warehouse(tmp_path / "wh.duckdb", gens, [("f1", "ok", at(2), "u1", "thumb", "up", None)])
    src, conn = source(wh)
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        with pytest.raises(DataError, match=r"3 of 5 new rows .* ingest.max_bad_share = 0.2; nothing was merged"):
            store.ingest(src, conn, settings=IngestSettings(max_bad_share=0.2))
        assert store.counts() == dict.fromkeys(store.counts(), 0)
        assert store.cursor_position("prod", "generations") is None
        assert store.ingest(src, conn, settings=IngestSettings(max_bad_share=0.6)).unpaired_added == 1


# ------------------------------------------------------------------------------------ cursor kinds
def test_text_timestamp_cursor_works_on_every_run(tmp_path):
    wh = warehouse(tmp_path / "wh.duckdb", [], [], ts="VARCHAR")

    def add(i: int, stamp: str) -> None:
        warehouse(wh, [(f"r{i}", stamp, "u1", "v1", chat(f"Q{i}?"), f"A{i}")],
                  [(f"f{i}", f"r{i}", stamp, "u1", "thumb", "up", None)])

    add(1, "2026-10-01 12:00:00")
    src, conn = source(wh)
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        for i, stamp in ((2, "2026-10-02 08:00:00"), (3, "2026-10-03 09:30:00")):
            store.ingest(src, conn)
            add(i, stamp)
        assert store.ingest(src, conn).unpaired_added == 1
        assert store.counts()["unpaired"] == 3
        assert store.cursor_position("prod", "feedback").value == "2026-10-03 09:30:00"


def test_integer_id_cursor_works_on_every_run(tmp_path):
    wh = warehouse(tmp_path / "wh.duckdb", [], [], extra=", seq BIGINT")

    def add(i: int) -> None:
        warehouse(wh, [good_gen(f"r{i}", i, f"Q{i}?", f"A{i}")],
                  [(f"f{i}", f"r{i}", at(i), "u1", "thumb", "up", None, i)])

    src, conn = source(wh, cursor={"feedback": "seq"})
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        for i in range(1, 4):
            add(i)
            assert store.ingest(src, conn).unpaired_added == 1
        assert store.cursor_position("prod", "feedback").value == "3"
        assert store.cursor_position("prod", "feedback").kind == "integer"


@pytest.mark.parametrize(("cursor", "message"), [
    ("no_such_column", "sources[prod].cursor.feedback"),
    ("kind", "sources[prod].cursor.feedback: the cursor column holds text that is not an ISO-8601 timestamp"),
])
def test_misconfigured_cursor_names_the_cursor_setting(tmp_path, cursor, message):
    wh = warehouse(tmp_path / "wh.duckdb", [good_gen("r1", 0)], [("f1", "r1", at(1), "u1", "thumb", "up", None)])
    src, conn = source(wh, cursor={"feedback": cursor})
    with FeedbackStore(tmp_path / "s.duckdb") as store, pytest.raises(ConfigError) as err:
        store.ingest(src, conn)
    assert message in str(err.value) and "mapping" not in str(err.value)


# ------------------------------------------------------------------- pending, fixes and conflicts
def test_feedback_pending_past_the_timeout_is_quarantined(tmp_path):
    wh = warehouse(tmp_path / "wh.duckdb", [good_gen("r1", 0)],
                   [("f1", "r1", at(1), "u1", "thumb", "up", None), ("f9", "r9", at(2), "u1", "thumb", "up", None)])
    src, conn = source(wh)
    settings = IngestSettings(pending_timeout=timedelta(days=3))
    now = datetime(2026, 11, 1)
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        assert store.ingest(src, conn, settings=settings, now=now).pending == 1
        assert store.ingest(src, conn, settings=settings, now=now + timedelta(days=2)).pending == 1
        late = store.ingest(src, conn, settings=settings, now=now + timedelta(days=4))
        assert (late.pending, late.quarantined) == (0, 1)
        assert reasons(store) == {"no generation after 3 days": 1}


def test_row_fixed_upstream_replaces_its_quarantined_or_stored_version(tmp_path):
    wh = warehouse(tmp_path / "wh.duckdb", [good_gen("r1", 0), good_gen("r2", 1, "Other?", "Yes.")],
                   [("f1", "r1", at(5), "u1", "thumb", "meh", None), ("f2", "r2", at(6), "u2", "thumb", "up", None)])
    src, conn = source(wh)
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        store.ingest(src, conn, settings=IngestSettings(max_bad_share=0.5))
        assert reasons(store) == {"thumb value must be 'up' or 'down'": 1}
        con = duckdb.connect(str(wh))
        con.execute("UPDATE feedback_events SET value = 'up', ts = ts + INTERVAL 1 HOUR WHERE event_id = 'f1'")
        con.execute("UPDATE feedback_events SET value = 'down', ts = ts + INTERVAL 1 HOUR WHERE event_id = 'f2'")
        con.close()
        result = store.ingest(src, conn)
        labels = dict(store.con.execute(
            "SELECT completion, label FROM unpaired").fetchall())
        assert reasons(store) == {}
        assert labels == {"Hello!": True, "Yes.": False}
        assert result.replaced == 2
        assert store.conflict_counts() == [("replaced by a newer version", 2)]


def test_conflicting_duplicates_of_one_key_are_recorded_not_silently_dropped(tmp_path):
    wh = warehouse(tmp_path / "wh.duckdb", [good_gen("r1", 0)],
                   [("f1", "r1", at(5), "u1", "thumb", "up", None), ("f1", "r1", at(5), "u1", "thumb", "down", None),
                    ("f1", "r1", at(5), "u1", "thumb", "up", None)])
    src, conn = source(wh)
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        result = store.ingest(src, conn)
        assert (result.unpaired_added, result.conflicts, result.duplicates) == (1, 1, 1)
        lost = store.con.execute("SELECT outcome, payload->>'value' FROM conflicts").fetchall()
        kept = store.con.execute("SELECT label FROM unpaired").fetchone()[0]
    assert lost == [("lost to a newer version in the same read", "up" if not kept else "down")]


def test_store_pointing_at_a_source_file_is_refused_before_writing(tmp_path):
    from alignloop import stages
    from alignloop.config import settings_from_dict

    wh = warehouse(tmp_path / "wh.duckdb", [good_gen("r1", 0)], [])
    before = wh.read_bytes()
    settings = settings_from_dict({"target": "t", "store": "wh.duckdb", "base_model": {"tiny": True},
                                   "sources": [{"name": "prod", "options": {"path": "wh.duckdb"}}]},
                                  base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"store: .* is the file sources\[prod\].options.path reads"):
        stages.ingest(settings)
    assert wh.read_bytes() == before


def test_store_of_an_earlier_layout_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE cursors (source VARCHAR, input VARCHAR, position TIMESTAMP, batch_id BIGINT, "
                "updated_at TIMESTAMP)")
    con.close()
    from alignloop.errors import TerminalError

    with pytest.raises(TerminalError, match="earlier alignloop .* move it aside"):
        FeedbackStore(path)


def test_stores_of_earlier_layouts_are_refused_and_a_current_one_reopens(tmp_path):
    from alignloop.errors import TerminalError

    with FeedbackStore(tmp_path / "new.duckdb"):
        pass
    with FeedbackStore(tmp_path / "new.duckdb") as store:  # its own layout opens again
        assert store.con.execute("SELECT value FROM store_meta WHERE key = 'layout'").fetchone() == ("3",)
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE unpaired (event_id VARCHAR, label BOOLEAN)")
    con.execute("CREATE TABLE store_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")
    con.execute("INSERT INTO store_meta VALUES ('user_salt', 'x')")
    con.close()
    with pytest.raises(TerminalError, match=r"earlier alignloop \(store layout 1, this version reads layout 3\); "
                                            "move it aside"):
        FeedbackStore(path)
    # Layout 2 stored the pairs of rated answers as if observed: read with this version, each would count twice.
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO store_meta VALUES ('layout', '2')")
    con.close()
    with pytest.raises(TerminalError, match=r"\(store layout 2, this version reads layout 3\); move it aside"):
        FeedbackStore(path)


def test_generation_fixed_upstream_brings_back_the_feedback_it_had_broken(tmp_path):
    broken = json.dumps([{"content": "Capital of France?"}])
    wh = warehouse(tmp_path / "wh.duckdb",
                   [("r1", at(0), "u1", "v1", broken, "Paris."), good_gen("r2", 1, "Capital of Spain?", "Madird.")],
                   [("f1", "r1", at(5), "u1", "thumb", "up", None), ("f2", "r2", at(6), "u2", "thumb", "up", None)])
    src, conn = source(wh)
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        store.ingest(src, conn, settings=IngestSettings(max_bad_share=0.5))
        assert reasons(store) == {"a message turn has no role, or one other than system, user, assistant": 1}
        con = duckdb.connect(str(wh))
        con.execute("UPDATE generations SET messages = ?, ts = ts + INTERVAL 1 HOUR WHERE request_id = 'r1'",
                    [chat("Capital of France?")])
        con.execute("UPDATE generations SET response = 'Madrid.', ts = ts + INTERVAL 1 HOUR WHERE request_id = 'r2'")
        con.close()
        store.ingest(src, conn)
        rows = sorted(store.con.execute("SELECT completion, label FROM unpaired").fetchall())
        assert reasons(store) == {}
        assert rows == [("Madrid.", True), ("Paris.", True)]
        assert store.con.execute("SELECT count(*) FROM pending").fetchone()[0] == 0


# ------------------------------------------------------------------------------- staging in slices
def test_the_read_is_staged_in_slices_of_bounded_arrow_size_in_order(monkeypatch):
    import pyarrow as pa

    from alignloop.ingest import landing

    batches = [pa.record_batch({"x": pa.array(range(i * 10, i * 10 + 10), pa.int64())}) for i in range(7)]
    size = batches[0].nbytes  # 80 bytes each
    monkeypatch.setattr(landing, "SLICE_BYTES", 2 * size + 1)
    slices = [list(part) for _, part in landing._slices(iter(batches))]  # each consumed before the next, as staged
    # A slice takes batches until it holds SLICE_BYTES or more: three batches here, and the rest last.
    assert [len(s) for s in slices] == [3, 3, 1]
    assert [b for s in slices for b in s] == batches  # every batch once, in the order read
    # A batch of other types (a file whose column DuckDB read as text) starts a slice of its own schema.
    texts = pa.record_batch({"x": pa.array(["70"])})
    mixed = [(schema, list(part)) for schema, part in landing._slices(iter([batches[0], texts, batches[1]]))]
    assert [(schema.field("x").type, part) for schema, part in mixed] == [
        (pa.int64(), [batches[0]]), (pa.string(), [texts]), (pa.int64(), [batches[1]])]
    assert list(landing._slices(iter([]))) == []
    # Batches reach DuckDB in pieces of at most PIECE_ROWS rows, so a small read is still scanned on every thread.
    monkeypatch.setattr(landing, "PIECE_ROWS", 4)
    pieces = list(landing._pieces(iter(batches[:2])))
    assert [p.num_rows for p in pieces] == [4, 4, 2, 4, 4, 2]
    assert pa.Table.from_batches(pieces).column("x").to_pylist() == list(range(20))
    assert [p.num_rows for p in landing._pieces(iter([batches[0].slice(0, 0)]))] == [0]  # still staged: one statement
    # A slice its statement did not read to the end would lose the rest of it: asking for the next one fails.
    slices_of = landing._slices(iter(batches))
    _, first = next(slices_of)
    next(first)
    with pytest.raises(RuntimeError, match="not read to its end"):
        next(slices_of)


def test_a_read_staged_over_many_statements_lands_what_one_statement_lands(tmp_path, monkeypatch):
    from alignloop.ingest import landing

    gens = [good_gen(f"r{i}", i, f"Question {i}?", f"Answer {i}.") for i in range(12)]
    gens.insert(9, good_gen("r2", 2, "Question 2?", "Answer 2."))  # a repeat of r2, several batches later
    gens.append(("r12", at(12), "u1", "v1", chat("Question 12?"), "   "))  # blank: quarantined, in the last batch
    fbs = [(f"f{i}", f"r{i}", at(i + 30), "u1", "thumb", "up" if i % 2 else "down", None) for i in range(13)]

    def land(name: str, slice_bytes: int | None) -> tuple:
        if slice_bytes is not None:
            monkeypatch.setattr(landing, "SLICE_BYTES", slice_bytes)
        wh = warehouse(tmp_path / f"{name}.duckdb", gens, fbs)
        src = SourceSettings(name="prod", options={"path": str(wh)})
        conn = DuckDBConnector(DuckDBSettings(path=wh, batch_size=2))
        with FeedbackStore(tmp_path / f"{name}-store.duckdb") as store:
            result = store.ingest(src, conn, now=datetime(2026, 11, 1), settings=IngestSettings(max_bad_share=0.5))
            rows = sorted(store.con.execute("SELECT event_id, completion, label FROM unpaired").fetchall())
            return result, rows, reasons(store), store.counts()

    sliced, rows, why, counts = land("sliced", 1)  # one batch of two rows per statement
    assert sliced.rows_read == {"generations": 14, "feedback": 13}
    assert sliced.unpaired_added == 12 and len(rows) == 12
    assert sliced.duplicates == 1  # the repeat of r2, staged by another statement than r2
    assert why == {"response is blank (whitespace only)": 1}  # r12; its feedback f12 waits for it
    assert sliced.pending == 1
    assert counts["raw_events_generations"] == 12
    whole = land("whole", 1 << 30)
    assert (whole[1], whole[2], whole[3]) == (rows, why, counts)


def test_a_read_failing_after_some_slices_were_staged_leaves_nothing_behind(tmp_path, monkeypatch):
    from alignloop.connectors.base import ConnectorTransientError
    from alignloop.errors import TransientError
    from alignloop.ingest import landing

    monkeypatch.setattr(landing, "SLICE_BYTES", 1)
    wh = warehouse(tmp_path / "wh.duckdb", [good_gen(f"r{i}", i) for i in range(6)], [])

    class DropsOut(DuckDBConnector):
        def read(self, window):
            for n, batch in enumerate(super().read(window)):
                if n == 2:
                    raise ConnectorTransientError("connection reset by peer")
                yield batch

    src = SourceSettings(name="prod", options={"path": str(wh)})
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        with pytest.raises(TransientError, match="connection reset by peer"):
            store.ingest(src, DropsOut(DuckDBSettings(path=wh, batch_size=2)))
        # Two slices were staged before the third failed: their table is gone, and nothing was stored.
        assert store.con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'land_stage%'"
                                 ).fetchone()[0] == 0
        assert store.counts()["raw_events_generations"] == 0
        assert store.cursor_position("prod", "generations") is None
