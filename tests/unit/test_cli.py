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


def test_epoch_number_timestamps_are_one_line_naming_the_setting_and_the_fix_that_then_loads_every_row(tmp_path):
    """An epoch number's unit is unknown, so it is refused by name; the fix the line gives (a view converting it,
    mapped by table and column) loads every row."""
    import duckdb

    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("CREATE TABLE generations (request_id VARCHAR, ts BIGINT, user_id VARCHAR, model_version VARCHAR, "
                "messages VARCHAR, response VARCHAR)")
    con.execute("CREATE TABLE feedback_events (event_id VARCHAR, request_id VARCHAR, ts BIGINT, user_id VARCHAR, "
                "kind VARCHAR, value VARCHAR, other_request_id VARCHAR)")
    for i in range(6):
        con.execute("INSERT INTO generations VALUES (?, ?, ?, 'v1', ?, ?)",
                    [f"r{i}", 1764000000 + i, f"u{i}", chat(f"question {i % 3}"), f"answer {i}"])
        con.execute("INSERT INTO feedback_events VALUES (?, ?, ?, ?, 'thumb', ?, NULL)",
                    [f"f{i}", f"r{i}", 1764000100 + i, f"u{i}", "up" if i % 2 else "down"])
    con.close()
    config = write_demo_config(tmp_path, tiny=True)
    refused = runner.invoke(app, ["ingest", "--config", str(config)])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    (line,) = [x for x in refused.output.splitlines() if x.startswith("error:")]
    assert line.startswith("error: sources[demo_chat].mapping.generations.ts: a column of numbers (int64) is not a "
                           "timestamp") and "to_timestamp(ts)" in line
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        for view, table in (("generations_at", "generations"), ("feedback_at", "feedback_events")):
            con.execute(f"CREATE VIEW {view} AS SELECT *, to_timestamp(ts) AS ts_utc FROM {table}")
    config.write_text(config.read_text().replace("    shape: events\n", "    shape: events\n    mapping:\n"
                      "      generations: {table: generations_at, ts: ts_utc}\n"
                      "      feedback: {table: feedback_at, ts: ts_utc}\n", 1))
    loaded = runner.invoke(app, ["ingest", "--config", str(config)])
    assert loaded.exit_code == 0, loaded.output
    planned = runner.invoke(app, ["plan", "--config", str(config), "--json"])
    assert planned.exit_code == 0, planned.output
    shape = json.loads(planned.stdout[planned.stdout.index("{"):])["shape"]
    # 1764000100 s after the epoch, read as UTC
    assert shape["n_unpaired"] == 6 and shape["first_ts"] == datetime(2025, 11, 24, 16, 1, 40).isoformat()
