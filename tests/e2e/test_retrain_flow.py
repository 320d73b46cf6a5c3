"""The whole retrain flow on the tiny offline model: production-like logs in, a registered version out."""

from __future__ import annotations

import json

import pytest
import torch
from mlflow import MlflowClient
from prefect.testing.utilities import prefect_test_harness
from typer.testing import CliRunner

from alignloop.cli.main import app
from alignloop.flows.retrain import retrain
from alignloop.config import load_settings
from alignloop.errors import ConfigError
from alignloop.models import training_precision
from alignloop.demo import write_demo_config, write_demo_warehouse
from tests.shared_builds import share_tiny_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefect_harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def demo_settings(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    write_demo_warehouse(workdir / "warehouse.duckdb", n_feedback=1500, n_prompts=120)
    return load_settings(share_tiny_model(write_demo_config(workdir, tiny=True)))


@pytest.fixture(scope="module")
def first_outcome(prefect_harness, demo_settings):
    return retrain(demo_settings)


def test_retrain_registers_version_1_as_newest_with_metrics(first_outcome, demo_settings):
    assert first_outcome.method == "dpo" and first_outcome.status in ("passed", "gated_out")
    assert first_outcome.reasons[0] == "no version of 'alignloop-demo' is registered yet"
    assert first_outcome.registered["version"] == 1
    client = MlflowClient(demo_settings.tracking_uri, registry_uri=demo_settings.tracking_uri)
    version = client.get_model_version_by_alias("alignloop-demo", "newest")
    assert int(version.version) == 1
    run = client.get_run(version.run_id)
    for name in ("eval_pref_accuracy_reference", "eval_pref_accuracy_candidate", "eval_reward_accuracy",
                 "eval_reward_margin", "train_final_loss"):
        assert name in run.data.metrics
        assert 0.0 <= run.data.metrics["eval_pref_accuracy_candidate"] <= 1.0
    assert run.data.params["method"] == "dpo"
    # the number format the scores were computed in, as the report says it
    report = json.loads((demo_settings.runs_dir / first_outcome.run_id / "eval_report.json").read_text())
    assert run.data.params["eval_precision"] == report["precision"] in ("float32", "bfloat16")
    trained = json.loads((demo_settings.runs_dir / first_outcome.run_id / "train.json").read_text())
    assert run.data.params["train_precision"] == trained["precision"] == training_precision("auto", "cpu")
    tags = version.tags
    assert tags["alignloop.method"] == "dpo"
    assert tags["alignloop.snapshot_id"] == json.loads(
        (demo_settings.runs_dir / first_outcome.run_id / "snapshot.json").read_text())["snapshot_id"]
    assert tags["alignloop.config_hash"] == demo_settings.config_hash()
    artifacts = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"plan.json", "shape.json", "eval_report.json"} <= artifacts
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == demo_settings.training.max_steps


def test_rerun_on_unchanged_data_trains_nothing_and_writes_no_run_folder(first_outcome, demo_settings):
    folders = sorted(demo_settings.runs_dir.iterdir())
    state = retrain(demo_settings, return_state=True)
    again = state.result()
    assert again.method == "skip" and again.registered is None and again.run_id is None
    assert again.reasons == [f"0 new feedback rows since version 1's snapshot {_snapshot(demo_settings, first_outcome)[:12]}"
                             ", fewer than schedule.min_new_feedback (100); nothing to train (--force trains anyway)"]
    assert sum(r["pairs_added"] + r["unpaired_added"] for r in again.ingested) == 0
    assert sorted(demo_settings.runs_dir.iterdir()) == folders
    assert state.name == "Skipped" and state.message == f"skipped: {again.reasons[0]}"


def test_a_snapshot_already_registered_is_not_trained_again(first_outcome, demo_settings):
    # schedule.min_new_feedback 0: every run plans; the snapshot and settings are those of version 1.
    lenient = demo_settings.model_copy(update={"schedule": demo_settings.schedule.model_copy(
        update={"min_new_feedback": 0})})
    again = retrain(lenient)
    assert again.method == "skip" and "already version 1" in again.reasons[-1]


def _snapshot(settings, outcome) -> str:
    return json.loads((settings.runs_dir / outcome.run_id / "snapshot.json").read_text())["snapshot_id"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CPU without native bfloat16 is what is simulated")
@pytest.mark.parametrize("section", ["evaluation", "training"])
def test_a_precision_the_machine_cannot_compute_is_refused_before_anything_trains(first_outcome, demo_settings,
                                                                                  monkeypatch, section):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    asked = demo_settings.model_copy(update={section: getattr(demo_settings, section).model_copy(
        update={"precision": "bfloat16"})})
    folders = sorted(demo_settings.runs_dir.iterdir())
    with pytest.raises(ConfigError, match=rf"^{section}\.precision: this cpu has no native bfloat16"):
        retrain(asked, force=True)
    # Refused before the plan: no run folder, no training, no new version.
    assert sorted(demo_settings.runs_dir.iterdir()) == folders
    client = MlflowClient(demo_settings.tracking_uri, registry_uri=demo_settings.tracking_uri)
    assert len(client.search_model_versions("name='alignloop-demo'")) == 1


def test_forced_rerun_registers_version_2_and_moves_newest(first_outcome, demo_settings):
    again = retrain(demo_settings, force=True)
    assert again.registered["version"] == 2
    client = MlflowClient(demo_settings.tracking_uri, registry_uri=demo_settings.tracking_uri)
    assert int(client.get_model_version_by_alias("alignloop-demo", "newest").version) == 2


def test_cli_plan_json_and_versions(first_outcome, demo_settings):
    config = str(demo_settings.workdir / "alignloop.yaml")
    runner = CliRunner()
    result = runner.invoke(app, ["plan", "--config", config, "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["method"] == "dpo" and plan["reasons"] and plan["shape"]["n_pairs"] > 0
    listed = runner.invoke(app, ["versions", "--config", config])
    assert listed.exit_code == 0 and "newest" in listed.stdout
