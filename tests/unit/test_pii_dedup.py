"""PII never reaches the store; duplicates are removed, contradictions kept and counted; one user
cannot dominate; `alignloop quarantine` shows what was set aside."""

from __future__ import annotations

import io

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from typer.testing import CliRunner

from alignloop.cli.quarantine import show_quarantine

from alignloop.config import IngestSettings
from alignloop.ingest.canonical import _NORM
from alignloop.pii import luhn_valid, register_scrub_udfs, scrub_sql, scrub_text
from alignloop.ingest.store import FeedbackStore
from tests.unit.test_loading import at, chat, source, warehouse

SAMPLES = [
    ("Mail me at alice.smith+work@example.co.uk today", "Mail me at [EMAIL] today"),
    ("Call +1 555-123-4567 or (020) 7946 0958", "Call [PHONE] or [PHONE]"),
    ("Card 4111 1111 1111 1111, order 4111111111111112", "Card [CARD], order 4111111111111112"),
    ("Server 192.168.10.254 and fe80:0:0:0:202:b3ff:fe1e:8329", "Server [IP] and [IP]"),
    ("2 + 2 = 4, version 1.2.3, on 2026-10-01 at 12:00", "2 + 2 = 4, version 1.2.3, on 2026-10-01 at 12:00"),
]


@pytest.mark.parametrize(("text", "expected"), SAMPLES)
def test_scrub_text_replaces_pii_and_leaves_ordinary_numbers(text, expected):
    assert scrub_text(text) == expected


def test_sql_scrubbing_matches_python_scrubbing():
    con = duckdb.connect()
    register_scrub_udfs(con)
    texts = [t for t, _ in SAMPLES]
    got = con.execute(f"SELECT {scrub_sql('t')} FROM unnest(?::VARCHAR[]) AS u(t)", [texts]).fetchall()
    assert [g for (g,) in got] == [e for _, e in SAMPLES]


def test_luhn():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")


def test_pii_is_scrubbed_before_it_reaches_the_store(tmp_path):
    wh = warehouse(tmp_path / "wh.duckdb",
                   [("r1", at(0), "alice@example.com", "v1", chat("I am bob@example.org, call 555-123-4567"),
                     "Noted, bob@example.org.")],
                   [("f1", "r1", at(1), "alice@example.com", "thumb", "up", None)])
    src, conn = source(wh)
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        store.ingest(src, conn)
        dump = str(store.con.execute("SELECT * FROM unpaired").fetchall()) + str(
            store.con.execute("SELECT * FROM raw_events_generations").fetchall())
    assert "example.org" not in dump and "555-123" not in dump and "alice@" not in dump
    assert "[EMAIL]" in dump and "[PHONE]" in dump


def test_pii_scrubbing_can_be_turned_off(tmp_path):
    wh = warehouse(tmp_path / "wh.duckdb", [("r1", at(0), "u1", "v1", chat("Hi"), "Write to bob@example.org")],
                   [("f1", "r1", at(1), "u1", "thumb", "up", None)])
    src, conn = source(wh)
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        store.ingest(src, conn, settings=IngestSettings(scrub_pii=False))
        assert store.con.execute("SELECT completion FROM unpaired").fetchone()[0] == "Write to bob@example.org"


# Whitespace of every kind (ASCII, Unicode space separators, line separators) beside letters of both cases.
_SPACES = " \t\n\r\f\v\u00a0\u1680\u2000\u2007\u200a\u202f\u205f\u3000\u2028\u2029\u0085\u180e\ufeff"


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.text(alphabet=st.sampled_from(list(_SPACES) + list("aBc.É")), max_size=12)
                      | st.text(max_size=12), min_size=1, max_size=20))
def test_duplicate_key_normalisation_is_the_trim_based_one(texts):
    """Keys stored by earlier versions were built with trim() at both ends; the cheaper form must give
    the same normalised text for any input, or a duplicate of an older row would look new."""
    old = "lower(trim(regexp_replace(t, '\\s{2,}|[\\t\\n\\r\\f\\v]', ' ', 'g')))"
    con = duckdb.connect()
    rows = con.execute(f"SELECT {_NORM.format(x='t')}, {old} FROM unnest(?::VARCHAR[]) AS u(t)", [texts]).fetchall()
    con.close()
    assert [new for new, _ in rows] == [was for _, was in rows]


def test_duplicates_removed_contradictions_kept_and_counted(tmp_path):
    gens = [("r1", at(0), "u1", "v1", chat("Capital of France?"), "Paris."),
            ("r2", at(1), "u2", "v1", chat("capital of  FRANCE?"), "paris. "),
            ("r3", at(1), "u3", "v1", chat("Best colour?"), "Blue."),
            ("r4", at(1), "u3", "v1", chat("Best colour?"), "Red.")]
    fbs = [("f1", "r1", at(2), "u1", "thumb", "up", None),
           ("f1b", "r2", at(3), "u1", "thumb", "up", None),    # same user, same vote after normalisation
           ("f2", "r1", at(4), "u2", "thumb", "up", None),     # another user agreeing: kept
           ("f3", "r1", at(5), "u3", "thumb", "down", None),   # another user disagreeing: kept, counted
           ("f4", "r3", at(6), "u1", "comparison", "a", "r4"),  # Blue over Red ...
           ("f5", "r4", at(7), "u2", "comparison", "a", "r3")]  # ... and Red over Blue: one contradictory pair
    wh = warehouse(tmp_path / "wh.duckdb", gens, fbs)
    src, conn = source(wh)
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        result = store.ingest(src, conn)
        kept = store.con.execute("SELECT count(*) FROM unpaired").fetchone()[0]
        reasons = dict(store.quarantine_reasons())
        contradictions = store.contradictions()
    assert (kept, result.unpaired_added) == (3, 3)
    assert reasons == {"duplicate of an earlier row (same user, prompt, answers and label after case/whitespace "
                       "normalisation)": 1}
    assert contradictions == {"prod": 2}


def test_per_user_cap_limits_contributed_rows(tmp_path):
    gens = [(f"r{i}", at(i), "u1", "v1", chat(f"Q{i}?"), f"A{i}.") for i in range(5)]
    fbs = [(f"f{i}", f"r{i}", at(10 + i), "heavy" if i < 4 else "light", "thumb", "up", None) for i in range(5)]
    wh = warehouse(tmp_path / "wh.duckdb", gens, fbs)
    src, conn = source(wh)
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        store.ingest(src, conn, settings=IngestSettings(max_rows_per_user=2, max_bad_share=1.0))
        completions = sorted(c for (c,) in store.con.execute("SELECT completion FROM unpaired").fetchall())
        reasons = dict(store.quarantine_reasons())
    assert completions == ["A0.", "A1.", "A4."]  # the heavy user's two oldest, and the light user's one
    assert reasons == {"user over ingest.max_rows_per_user (2 rows)": 2}


def test_quarantine_command_shows_counts_by_reason_and_examples(tmp_path):
    from alignloop.cli.main import app

    gens = [(f"r{i}", at(i), "u1", "v1", chat(f"Q{i}?"), f"A{i}.") for i in range(4)]
    fbs = [(f"f{i}", f"r{i}", at(10 + i), "u1", "thumb", "meh" if i < 2 else "up", None) for i in range(4)]
    wh = warehouse(tmp_path / "wh.duckdb", gens, fbs)
    config = tmp_path / "alignloop.yaml"
    config.write_text(f"target: t\nbase_model: {{tiny: true}}\ningest: {{max_bad_share: 1.0}}\n"
                      f"sources:\n  - name: prod\n    options: {{path: {wh}}}\n")
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", "--config", str(config)]).exit_code == 0
    shown = runner.invoke(app, ["quarantine", "--config", str(config), "--source", "prod"])
    assert shown.exit_code == 0, shown.output
    assert "quarantine of prod: 2 rows" in shown.stdout
    wide = Console(file=io.StringIO(), width=400)
    show_quarantine(config, "prod", 1, wide)
    text = wide.file.getvalue()
    assert "│ 2    │ thumb value must be 'up' or 'down' │" in text and '"value":"meh"' in text
    wrong = runner.invoke(app, ["quarantine", "--config", str(config), "--source", "nope"])
    assert wrong.exit_code == 2 and "--source: no source named 'nope'" in wrong.output
