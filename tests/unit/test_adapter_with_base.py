"""mlflow.log_weights: adapter_with_base — a LoRA version logged as its adapter beside a copy of the base
model's files loads anywhere: in a fresh process, with the training run folder and every local model
cache deleted, through `mlflow.pyfunc.load_model("models:/<target>@challenger")`, and as the merged
folder that evaluation fetches for a champion."""

from __future__ import annotations

import json
import shutil

import pytest

from alignloop import registry, stages
from alignloop.config import settings_from_dict
from tests.unit.eval_reports import eval_report
from tests.unit.test_register_stage import TARGET, _run_folder, predict_in_fresh_process

pytestmark = pytest.mark.slow


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_an_adapter_logged_with_its_base_files_loads_in_a_fresh_process_after_every_local_copy_is_gone(tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    settings = settings_from_dict({
        "target": TARGET, "workdir": str(tmp_path / "work"),
        "sources": [{"name": "prod", "options": {"path": str(tmp_path / "wh.duckdb")}}],
        "base_model": {"tiny": True, "cache_dir": str(tmp_path / "models")},
        "mlflow": {"log_weights": "adapter_with_base"}, "promotion": {"lock_wait_s": 30}}, base_dir=tmp_path)
    base = stages.base_model_dir(settings)  # the training cache's copy of the base: deleted below
    torch.manual_seed(5)
    # Random adapter weights (not the zero init), so an answer depends on the adapter being applied.
    adapted = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                             LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter = settings.runs_dir / "r1" / "candidate"
    adapted.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(base).save_pretrained(adapter)  # as training saves it
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base)

    tok = AutoTokenizer.from_pretrained(base)
    prompt = "What is two plus two?"
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    ids = tok(text, return_tensors="pt")
    with torch.no_grad():
        adapted.eval()
        out = adapted.generate(**ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
        expected_logits = adapted(ids["input_ids"]).logits
        base_logits = AutoModelForCausalLM.from_pretrained(base)(ids["input_ids"]).logits
    expected = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert not torch.allclose(expected_logits, base_logits)  # the adapter matters

    version = stages.register(settings, _run_folder(settings, "r1", adapter, eval_report(), kind="lora"))
    tags = registry.describe(settings.tracking_uri, TARGET)[0]["tags"]
    assert tags["alignloop.weights"] == "adapter_with_base"
    assert tags["alignloop.model_sha256"] == registry.files_sha256([adapter, base])  # adapter and base, both logged

    # Only MLflow remains: the run folder (adapter), the base model cache and the merged-copy cache are gone,
    # so neither adapter_config.json's base path nor the recorded base_model_path resolves on this machine.
    shutil.rmtree(settings.runs_dir)
    shutil.rmtree(tmp_path / "models")
    shutil.rmtree(settings.workdir / ".cache", ignore_errors=True)
    assert not base.exists()
    assert predict_in_fresh_process(settings, prompt, tmp_path) == [expected]
    assert version.version == 1

    # Evaluation scores a champion from fetch_version_model's folder: the adapter merged onto the shipped base.
    folder = registry.fetch_version_model(settings.tracking_uri, TARGET, "challenger", cache_dir=tmp_path / "fetched")
    with torch.no_grad():
        fetched = AutoModelForCausalLM.from_pretrained(folder)(ids["input_ids"]).logits
    assert torch.allclose(fetched, expected_logits, atol=1e-5)
