"""stages.register with the gate: verdicts on versions, auto-promotion only for a pass, one version per
run, merged LoRA weights that load in a fresh process with the training folders gone, and the
review page written beside the run and logged to MLflow."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from alignloop import registry, runs, stages
from alignloop.config import settings_from_dict
from tests.unit.eval_reports import eval_report

TARGET = "helpdesk"
PLAN = {"method": "dpo", "hyperparameters": {"beta": 0.1, "max_steps": 5},
        "reasons": ["412 training pairs ≥ planning.min_pairs (32): comparisons are the strongest signal",
                    "estimated pair flip rate 4.0% < planning.noise_threshold (15.0%): DPO's sigmoid loss"],
        "shape": {"n_pairs": 515, "n_pairs_train": 412, "n_up": 300, "n_down": 120, "n_prompts": 96,
                  "up_share": 0.714, "pair_agreement": {"flip_rate": 0.04}, "thumb_agreement": {"flip_rate": 0.07},
                  "chosen_longer_share": 0.58, "first_ts": "2026-10-01T12:00:00", "last_ts": "2026-10-30T09:00:00"}}


def _settings(tmp_path: Path, **promotion):
    return settings_from_dict({"target": TARGET, "workdir": str(tmp_path / "work"),
                               "sources": [{"name": "prod", "options": {"path": str(tmp_path / "wh.duckdb")}}],
                               "base_model": {"tiny": True, "cache_dir": str(tmp_path / "models")},
                               "promotion": {"lock_wait_s": 30, **promotion}}, base_dir=tmp_path)


def fresh_env(settings, home: Path) -> dict[str, str]:
    """The environment of a new process on a machine without the training caches: MLflow's URI, no hub."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "HF_HUB_OFFLINE": "1",
            "MLFLOW_TRACKING_URI": settings.tracking_uri, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def predict_in_fresh_process(settings, prompt: str, home: Path) -> list:
    """`models:/<target>@challenger` loaded with mlflow.pyfunc in a new Python process that sees nothing but
    MLflow (no caches in HOME), answering one prompt with at most 6 new tokens."""
    code = ("import json, mlflow.pyfunc\n"
            f"m = mlflow.pyfunc.load_model('models:/{TARGET}@challenger', model_config={{'generation': "
            "{'max_new_tokens': 6}})\n"
            f"print(json.dumps(m.predict([{prompt!r}])))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=home, env=fresh_env(settings, home),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run_folder(settings, name: str, model_dir: Path, report: dict, kind: str = "full", snapshot: str | None = None):
    run_dir = settings.runs_dir / name
    run_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "snapshot": {"snapshot_id": snapshot or f"snap-{name}", "created_at": "2026-10-30T10:00:00", "high_water_batch": 3,
                     "n_unpaired": 420, "n_pairs": 515},
        "plan": PLAN,
        "train": {"model_dir": str(model_dir), "kind": kind, "method": "dpo", "n_train": 412, "runtime_s": 12.0,
                  "device": "cpu", "history": [{"step": 1, "loss": 0.69}], "final_loss": 0.69},
        "eval_report": report,
    }
    for stem, obj in files.items():
        (run_dir / f"{stem}.json").write_text(json.dumps(obj))
    (run_dir / "per_pair_scores.jsonl").write_text("".join(
        json.dumps({"index": i, "reward_margin": 0.1 * i - 0.2}) + "\n" for i in range(6)))
    return runs.latest_run(settings, name)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    from alignloop.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "base")


@pytest.mark.slow
def test_auto_promotion_takes_a_passing_candidate_and_leaves_a_failing_one_registered_without_an_alias_to_promote(
        tmp_path, base_dir):
    settings = _settings(tmp_path, auto_promote=True)
    good = stages.register(settings, _run_folder(settings, "r1", base_dir, eval_report(delta=(0.06, 0.02, 0.10))))
    assert good.version == 1 and good.aliases == ("champion", "newest")
    flipped = eval_report(delta=(-0.08, -0.13, -0.03), champion_version=1, champion_delta=(-0.14, -0.2, -0.08))
    bad = stages.register(settings, _run_folder(settings, "r2", base_dir, flipped))
    assert bad.version == 2 and bad.aliases == ("newest",)
    assert registry.find_version(settings.tracking_uri, TARGET, "champion").version == 1

    rows = {r["version"]: r for r in registry.describe(settings.tracking_uri, TARGET)}
    assert rows[1]["tags"]["alignloop.gate.verdict"] == "pass" and rows[2]["tags"]["alignloop.gate.verdict"] == "fail"
    assert "lower bound -0.200 ≤ +0.010" in rows[2]["tags"]["alignloop.gate.reasons"]
    assert rows[2]["tags"]["alignloop.gate.settings_hash"] == settings.promotion.gate_hash()
    assert json.loads(rows[2]["tags"]["alignloop.gate.settings"]) == settings.promotion.gate_values()
    assert rows[1]["tags"]["alignloop.promoted_by"].startswith("auto_promote (os user ")
    assert rows[2]["tags"]["alignloop.evaluated_against"] == "1" and rows[2]["tags"]["alignloop.eval_set_hash"] == "set-a"
    assert rows[1]["tags"]["alignloop.base_model"] == "tiny-llama(seed=0)"
    assert rows[1]["tags"]["alignloop.model_sha256"] == registry.files_sha256([base_dir])
    saved = json.loads((settings.runs_dir / "r2" / "registered.json").read_text())
    assert saved["gate"]["verdict"] == "fail" and saved["auto_promoted"] is False

    # Registering r2 again is the same version, and its review page is an artifact of its run.
    again = stages.register(settings, runs.latest_run(settings, "r2"))
    assert (again.version, again.reused) == (2, True)
    assert len(registry.describe(settings.tracking_uri, TARGET)) == 2
    # A second run folder of the same snapshot and settings (two runs at once) gets that version too.
    twin = stages.register(settings, _run_folder(settings, "r2-twin", base_dir, flipped, snapshot="snap-r2"))
    assert (twin.version, twin.reused) == (2, True)
    assert len(registry.describe(settings.tracking_uri, TARGET)) == 2
    artifacts = {f.path for f in MlflowClient(settings.tracking_uri).list_artifacts(rows[2]["run_id"])}
    assert {"review.html", "gate.json", "eval_report.json", "per_pair_scores.jsonl"} <= artifacts
    page = (settings.runs_dir / "r2" / "review.html").read_text()
    assert "Gate verdict: <b>FAIL</b>" in page and "-0.140 <span class=ci>[-0.200, -0.080]</span>" in page


@pytest.mark.slow
def test_the_sft_weight_is_an_mlflow_param_and_the_sampled_win_rate_a_metric_beside_the_greedy_one(tmp_path, base_dir):
    settings = _settings(tmp_path)
    report = eval_report(sampled_win_rate=(0.58, 0.47, 0.69))
    planned = _run_folder(settings, "r1", base_dir, report)
    plan = {**PLAN, "hyperparameters": {**PLAN["hyperparameters"], "loss_type": ["sigmoid", "sft"],
                                        "loss_weights": [1.0, 0.5], "sft_weight": 0.5}}
    (planned.run_dir / "plan.json").write_text(json.dumps(plan))
    registered = stages.register(settings, runs.latest_run(settings, "r1"))
    row = next(r for r in registry.describe(settings.tracking_uri, TARGET) if r["version"] == registered.version)
    run = MlflowClient(settings.tracking_uri).get_run(row["run_id"]).data
    assert (run.params["hp.sft_weight"], run.params["hp.loss_weights"]) == ("0.5", "[1.0, 0.5]")
    assert run.params["hp.loss_type"] == '["sigmoid", "sft"]'
    assert (run.metrics["eval_judge_sampled_win_rate"], run.metrics["eval_judge_sampled_win_rate_ci_low"],
            run.metrics["eval_judge_sampled_win_rate_ci_high"], run.metrics["eval_judge_sampled_prompts"]) == (
        0.58, 0.47, 0.69, 32.0)
    assert run.metrics["eval_judge_win_rate"] == 0.62  # the greedy one, which the gate reads, beside it


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_a_lora_version_is_logged_merged_loads_in_a_fresh_process_and_serves_after_the_training_files_are_gone(
        tmp_path, base_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    settings = _settings(tmp_path)
    torch.manual_seed(3)
    adapted = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir),
                             LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter = settings.runs_dir / "r1" / "candidate"
    adapted.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(adapter)
    tok = AutoTokenizer.from_pretrained(base_dir)
    prompt = "What is two plus two?"
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    ids = tok(text, return_tensors="pt")
    def greedy(new_tokens: int) -> str:
        with torch.no_grad():
            out = adapted.eval().generate(**ids, max_new_tokens=new_tokens, do_sample=False,
                                          pad_token_id=tok.pad_token_id)
        return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)

    expected = greedy(6)

    planned = _run_folder(settings, "r1", adapter, eval_report(), kind="lora")
    version = stages.register(settings, planned)
    tags = registry.describe(settings.tracking_uri, TARGET)[0]["tags"]
    assert tags["alignloop.weights"] == "merged"
    # The training run folder, the merged copy and every model cache are gone; only MLflow remains.
    shutil.rmtree(settings.runs_dir)
    shutil.rmtree(tmp_path / "models", ignore_errors=True)
    assert predict_in_fresh_process(settings, prompt, tmp_path) == [expected]
    assert version.version == 1

    # `mlflow models serve` answers the same prompt over HTTP on loopback (with the logged generation
    # settings: 128 new tokens at most, greedy).
    expected_served = greedy(128)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "models", "serve", "-m", f"models:/{TARGET}@challenger",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path, env={**fresh_env(settings, tmp_path), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        body = json.dumps({"inputs": [prompt]}).encode()
        deadline = time.monotonic() + 240
        while True:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=60) as r:
                    answer = json.loads(r.read())
                break
            except OSError:
                assert server.poll() is None, server.stderr.read()[-2000:]
                assert time.monotonic() < deadline, "mlflow models serve did not answer within 240 s"
                time.sleep(1)
        assert answer == {"predictions": [expected_served]}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
