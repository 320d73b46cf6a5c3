"""`alignloop train --launcher accelerate --num-processes 2` on CPU: the same training, two processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alignloop.cli.main import app
from tests.conftest import chat, make_warehouse
from tests.shared_builds import model_cache

pytestmark = pytest.mark.slow


def _config(tmp_path: Path) -> Path:
    generations, feedback = [], []
    for i in range(48):
        question = chat(f"What is {i} plus {i}?")
        generations += [(f"g{i}", i, "u1", "v1", question, f"Happy to help: it is {2 * i}."),
                        (f"b{i}", i, "u1", "v1", question, f"Ugh. {2 * i}.")]
        feedback.append((f"f{i}", f"g{i}", 60 + i, "u2", "comparison", "a", f"b{i}"))
    make_warehouse(tmp_path / "warehouse.duckdb", generations, feedback)
    config = tmp_path / "alignloop.yaml"
    config.write_text(
        "target: accel\n"
        "sources:\n  - name: chat\n    connector: duckdb\n    options:\n      path: warehouse.duckdb\n"
        f"base_model:\n  tiny: true\n  cache_dir: {model_cache()}\n"
        "planning:\n  min_pairs: 8\n"
        "training:\n  max_steps: 4\n  per_device_batch_size: 2\n  log_every: 2\n"
    )
    return config


def test_two_cpu_processes_train_the_planned_run_through_accelerate(tmp_path):
    config = _config(tmp_path)
    runner = CliRunner()
    for command in ("ingest", "plan"):
        result = runner.invoke(app, [command, "-c", str(config)])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", "-c", str(config), "--launcher", "accelerate", "--num-processes", "2"])
    run_dir = next((tmp_path / "runs").glob("2*"))
    trained = run_dir / "train.json"
    # Known: a two-process gloo run on CPU sometimes aborts at exit after finishing. That is tolerated
    # only when training finished and wrote its outputs (the CLI then warns and exits 0).
    assert result.exit_code == 0, result.output
    summary = json.loads(trained.read_text())
    assert summary["processes"] == 2
    assert [h["step"] for h in summary["history"]] == [1, 2, 3, 4]
    # TRL counts the tokens every process read; they are exactly the rows ordered for 4 steps x 2 rows x 2 processes.
    assert summary["history"][-1]["num_tokens"] == summary["tokens_trained"]
    assert (run_dir / "candidate" / "adapter_model.safetensors").is_file()
    assert "candidate:" in result.output


def test_the_retrain_flow_trains_on_two_processes_when_training_processes_is_2(tmp_path):
    from prefect.testing.utilities import prefect_test_harness

    from alignloop.config import load_settings
    from alignloop.flows.retrain import retrain

    config = _config(tmp_path)
    config.write_text(config.read_text() + "  processes: 2\n")
    with prefect_test_harness(server_startup_timeout=180):
        outcome = retrain(load_settings(config), config_path=str(config))
    assert outcome.registered is not None and outcome.registered["version"] == 1
    summary = json.loads((tmp_path / "runs" / outcome.run_id / "train.json").read_text())
    assert summary["processes"] == 2 and [h["step"] for h in summary["history"]] == [1, 2, 3, 4]


def test_two_processes_without_a_config_file_is_a_one_line_error(tmp_path):
    from alignloop import stages
    from alignloop.errors import ConfigError

    with pytest.raises(ConfigError, match="training.processes: above 1 the run must start from a config file"):
        stages.train_launched(None, None, None, 2)
