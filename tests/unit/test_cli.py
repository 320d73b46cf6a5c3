"""The CLI speaks in one-line errors for bad input, and its plan command prints the Plan."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from alignloop.cli.main import app
from alignloop.demo import write_demo_config, write_demo_warehouse

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
