"""Each stage alone from the CLI, in order, on the tiny model: the same result as the flow, step by step."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from alignloop.cli.main import app
from alignloop.config import load_settings
from alignloop.demo import write_demo_config, write_demo_warehouse
from tests.shared_builds import share_tiny_model

pytestmark = pytest.mark.slow


def test_stages_one_at_a_time_end_in_a_registered_version(tmp_path):
    write_demo_warehouse(tmp_path / "warehouse.duckdb", n_feedback=1200, n_prompts=100)
    config = str(share_tiny_model(write_demo_config(tmp_path, tiny=True)))
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, [*args, "--config", config])
        assert result.exit_code == 0, result.output
        return result.stdout

    assert "demo_chat" in run("ingest")
    plan = json.loads(run("plan", "--json"))
    assert plan["method"] == "dpo"
    assert "candidate:" in run("train")
    assert "preference accuracy" in run("evaluate")
    registered = run("register")
    assert "version 1 as" in registered and "newest" in registered  # challenger too, only if it passed

    settings = load_settings(config)
    (run_dir,) = [p for p in settings.runs_dir.iterdir() if p.is_dir()]
    assert {"plan.json", "snapshot.json", "train.json", "eval_report.json", "registered.json"} <= {
        p.name for p in run_dir.iterdir()}
    client = MlflowClient(settings.tracking_uri, registry_uri=settings.tracking_uri)
    version = client.get_model_version_by_alias("alignloop-demo", "newest")
    assert version.tags["alignloop.run_folder"] == run_dir.name
    metrics = client.get_run(version.run_id).data.metrics
    assert {"eval_pref_accuracy_reference", "eval_pref_accuracy_candidate"} <= set(metrics)
    assert version.tags["alignloop.gate.verdict"] in ("pass", "fail", "unmeasured")
    assert version.tags["alignloop.weights"] == "merged" and version.tags["alignloop.complete"] == "true"

    # Registering the same run again is the same version; its review page is written beside the run.
    assert "already registered: alignloop-demo version 1" in run("register")
    assert len(client.search_model_versions("name = 'alignloop-demo'")) == 1
    assert f"review page: {run_dir / 'review.html'}" in run("review").replace("\n", "")
    assert "Gate verdict:" in (run_dir / "review.html").read_text()
