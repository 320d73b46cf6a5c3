"""The CLI speaks in one-line errors for bad input, and its plan command prints the Plan."""

from __future__ import annotations

import json
from datetime import datetime

from typer.testing import CliRunner

from alignloop.cli.main import app
from alignloop.demo import write_demo_config, write_demo_warehouse
from tests.conftest import chat

runner = CliRunner()


def test_bad_config_is_a_one_line_error_without_traceback(tmp_path):
    config = tmp_path / "alignloop.yaml"
    config.write_text("target: x\nsources:\n  - name: a\nbase_model:\n  tiny: true\ntraining:\n  max_stepz: 3\n")
    result = runner.invoke(app, ["plan", "--config", str(config)])
    assert result.exit_code == 2
    assert "training.max_stepz: unknown key" in result.output
    assert "Traceback" not in result.output


def test_missing_warehouse_names_the_option(tmp_path):
    config = write_demo_config(tmp_path, tiny=True)
    result = runner.invoke(app, ["ingest", "--config", str(config)])
    assert result.exit_code == 1
    assert "options.path" in result.output and "Traceback" not in result.output


def test_ingest_then_plan_json(tmp_path):
    write_demo_warehouse(tmp_path / "warehouse.duckdb", n_feedback=600, n_prompts=60)
    config = str(write_demo_config(tmp_path, tiny=True))
    ingested = runner.invoke(app, ["ingest", "--config", config])
    assert ingested.exit_code == 0, ingested.output
    assert "demo_chat" in ingested.stdout
    planned = runner.invoke(app, ["plan", "--config", config, "--json"])
    assert planned.exit_code == 0, planned.output
    plan = json.loads(planned.stdout)
    assert set(plan) == {"method", "hyperparameters", "reasons", "shape", "estimate"}
    assert plan["method"] in {"dpo", "ipo", "kto", "skip"}
    assert plan["shape"]["n_pairs"] + plan["shape"]["n_unpaired"] > 0


def test_registry_commands_without_a_target_name_the_setting(tmp_path):
    config = tmp_path / "alignloop.yaml"
    config.write_text("sources:\n  - name: a\n    connector: duckdb\n    options: {path: wh.duckdb}\n"
                      "base_model:\n  tiny: true\n")
    result = runner.invoke(app, ["versions", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "target: required to evaluate against the champion, register, promote or list versions" in result.output
    assert "Traceback" not in result.output


def test_train_without_a_plan_says_what_to_run_first(tmp_path):
    config = str(write_demo_config(tmp_path, tiny=True))
    result = runner.invoke(app, ["train", "--config", config])
    assert result.exit_code == 1
    assert "alignloop plan" in result.output


def test_bad_connector_option_is_a_one_line_error_naming_it(tmp_path):
    config = tmp_path / "alignloop.yaml"
    config.write_text("target: x\nsources:\n  - name: prod\n    options:\n      path: wh.duckdb\n      colour: blue\n"
                      "base_model:\n  tiny: true\n")
    result = runner.invoke(app, ["ingest", "--config", str(config)])
    assert result.exit_code == 2
    assert "sources[prod].options.colour: unknown key" in result.output
    assert "Traceback" not in result.output


def test_epoch_number_timestamps_load_as_seconds_incrementally_and_a_millisecond_one_is_quarantined(tmp_path):
    """The events shape reads a time column of numbers as epoch seconds, as every other shape does; its cursor
    then reads only new rows; a number past year 9999 (milliseconds) spoils only its row."""
    import duckdb

    def add(rows: range, ts_of=lambda i: 1764000100 + i) -> None:
        with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
            con.execute("CREATE TABLE IF NOT EXISTS generations (request_id VARCHAR, ts BIGINT, user_id VARCHAR, "
                        "model_version VARCHAR, messages VARCHAR, response VARCHAR)")
            con.execute("CREATE TABLE IF NOT EXISTS feedback_events (event_id VARCHAR, request_id VARCHAR, ts BIGINT, "
                        "user_id VARCHAR, kind VARCHAR, value VARCHAR, other_request_id VARCHAR)")
            for i in rows:
                con.execute("INSERT INTO generations VALUES (?, ?, ?, 'v1', ?, ?)",
                            [f"r{i}", 1764000000 + i, f"u{i}", chat(f"question {i % 3}"), f"answer {i}"])
                con.execute("INSERT INTO feedback_events VALUES (?, ?, ?, ?, 'thumb', ?, NULL)",
                            [f"f{i}", f"r{i}", ts_of(i), f"u{i}", "up" if i % 2 else "down"])

    def shape() -> dict:
        planned = runner.invoke(app, ["plan", "--config", str(config), "--json"])
        assert planned.exit_code == 0, planned.output
        return json.loads(planned.stdout[planned.stdout.index("{"):])["shape"]

    add(range(6))
    config = write_demo_config(tmp_path, tiny=True)
    loaded = runner.invoke(app, ["ingest", "--config", str(config)])
    assert loaded.exit_code == 0, loaded.output
    # 1764000100 s after the epoch, read as UTC
    assert shape()["n_unpaired"] == 6 and shape()["first_ts"] == datetime(2025, 11, 24, 16, 1, 40).isoformat()
    add(range(6, 9), ts_of=lambda i: 1764000100 + i if i < 8 else 1764000108000)   # the last in milliseconds
    again = runner.invoke(app, ["ingest", "--config", str(config)])
    assert again.exit_code == 0, again.output
    assert shape()["n_unpaired"] == 8 and shape()["last_ts"] == datetime(2025, 11, 24, 16, 1, 47).isoformat()
    quarantined = runner.invoke(app, ["quarantine", "--config", str(config)])
    assert "ts is not a timestamp" in quarantined.output and "\"event_id\":\"f8\"" in quarantined.output, quarantined.output
    nothing = runner.invoke(app, ["ingest", "--config", str(config)])
    assert nothing.exit_code == 0 and shape()["n_unpaired"] == 8


def test_fractional_epoch_seconds_load_from_a_file_and_from_a_database_incrementally(tmp_path):
    """Chatbot-Arena-style comparisons carry `tstamp` as fractional epoch seconds: they load, and as a database
    cursor they read only what is new (from the last whole second, so the last row is read again, not stored
    again)."""
    import duckdb

    rows = [{"prompt": f"q{i}", "answer_a": f"a{i}", "answer_b": f"b{i}", "winner": "a" if i % 2 else "tie",
             "tstamp": 1682351591.25 + i} for i in range(5)]
    (tmp_path / "battles.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with duckdb.connect(str(tmp_path / "arena.duckdb")) as con:
        con.execute("CREATE TABLE battles (prompt VARCHAR, answer_a VARCHAR, answer_b VARCHAR, winner VARCHAR, "
                    "tstamp DOUBLE)")
        # other questions than the file's: the same vote from two sources would be one stored row
        con.executemany("INSERT INTO battles VALUES (?, ?, ?, ?, ?)",
                        [["db " + r["prompt"], *list(r.values())[1:]] for r in rows])
    config = tmp_path / "alignloop.yaml"
    config.write_text(
        "target: t\nbase_model:\n  tiny: true\nsources:\n"
        "  - name: arena_file\n    connector: files\n    options: {path: battles.jsonl}\n    shape: comparisons\n"
        "    mapping: {rows: {ts: tstamp}}\n"
        "  - name: arena_db\n    connector: duckdb\n    options: {path: arena.duckdb}\n    shape: comparisons\n"
        "    mapping: {rows: {table: battles, ts: tstamp}}\n")
    from alignloop import stages
    from alignloop.config import load_settings

    first = {r.source: r for r in stages.ingest(load_settings(config))}
    assert sum(first["arena_file"].rows_read.values()) == sum(first["arena_db"].rows_read.values()) == 5
    assert first["arena_file"].pairs_added == first["arena_db"].pairs_added == 2
    assert first["arena_file"].ties_added == first["arena_db"].ties_added == 3
    with duckdb.connect(str(tmp_path / "arena.duckdb")) as con:
        con.execute("INSERT INTO battles VALUES ('q9', 'a9', 'b9', 'a', 1682351600.5)")
    db = next(r for r in stages.ingest(load_settings(config)) if r.source == "arena_db")
    assert sum(db.rows_read.values()) == 2 and db.pairs_added == 1 and db.duplicates == 1


def test_a_source_refused_before_its_rows_are_read_leaves_no_connection_to_it_open(tmp_path):
    """A time column that is no time (here a boolean) is refused in one line before every batch is read; the
    source's connection ends with the refusal, so the warehouse opens for writing in this same process (a
    long-running `serve` would otherwise hold it until the error is dropped)."""
    import duckdb

    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("CREATE TABLE generations (request_id VARCHAR, ts BOOLEAN, user_id VARCHAR, model_version VARCHAR, "
                    "messages VARCHAR, response VARCHAR)")
        con.execute("CREATE TABLE feedback_events (event_id VARCHAR, request_id VARCHAR, ts BOOLEAN, user_id VARCHAR, "
                    "kind VARCHAR, value VARCHAR, other_request_id VARCHAR)")
        con.execute("INSERT INTO generations VALUES ('r1', true, 'u1', 'v1', ?, 'answer')", [chat("question")])
    config = write_demo_config(tmp_path, tiny=True)
    refused = runner.invoke(app, ["ingest", "--config", str(config)])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "a cursor column of type bool cannot order rows" in refused.output, refused.output
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:   # read-write: no read-only attach is left
        assert con.execute("SELECT count(*) FROM generations").fetchone() == (1,)
