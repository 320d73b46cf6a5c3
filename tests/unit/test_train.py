"""Training and evaluation with TRL's real trainers on the tiny offline model, a few steps each."""

from __future__ import annotations

from pathlib import Path

import pytest

from alignloop.config import BaseModelSettings, LoraSettings, PlanningSettings, TrainingSettings
from alignloop.datasets import holdout_eval_pairs, split_snapshot
from alignloop.errors import DataError
from alignloop.evaluation.candidate import EvalOptions, evaluate_candidate
from alignloop.evaluation.scoring import encode_pairs
from alignloop.models import load_tokenizer, resolve_base_model
from alignloop.planner import Plan, choose_method
from alignloop.profile import measure_profile
from alignloop.training import train_candidate
from tests.unit.test_planner import EMPTY_PAIRS, EMPTY_THUMBS, pairs_table, thumbs_table

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return resolve_base_model(BaseModelSettings(tiny=True), tmp_path_factory.mktemp("models"))


def _plan(unpaired, pairs, **training) -> Plan:
    shape = measure_profile(unpaired, pairs, 0.3)
    return choose_method(shape, TrainingSettings(max_steps=2, per_device_batch_size=2, max_length=64, **training),
                         PlanningSettings(min_pairs=8, min_unpaired=8, rlhf_compute_budget=3))


@pytest.mark.parametrize(
    ("data", "training", "method", "kind"),
    [
        ("pairs", {}, "dpo", "lora"),
        ("pairs", {"method": "ipo"}, "ipo", "lora"),
        ("thumbs", {"method": "kto"}, "kto", "lora"),
        ("thumbs", {}, "ipo", "lora"),   # thumbs that make pairs: IPO on pairs from thumbs
        ("pairs", {"lora": LoraSettings(enabled=False)}, "dpo", "full"),
        ("pairs", {"method": "rlhf"}, "rlhf", "lora"),
    ],
)
def test_each_method_trains_saves_and_evaluates(tmp_path, tiny_dir, data, training, method, kind):
    unpaired, pairs = (EMPTY_THUMBS, pairs_table(60, n_prompts=20)) if data == "pairs" else (
        thumbs_table(40, 40, n_prompts=20), EMPTY_PAIRS)
    plan = _plan(unpaired, pairs, **training)
    assert plan.method == method
    split = split_snapshot(unpaired, pairs, 0.3)
    steps = []
    result = train_candidate(plan, split, tiny_dir, tmp_path, device="cpu",
                             progress=lambda step, total, logs: steps.append((step, total, logs["loss"])))
    assert (result.method, result.kind) == (method, kind)
    if method == "rlhf":  # the reward model's 2 steps, then the policy's 2, on one scale
        assert [s[:2] for s in steps] == [(1, 4), (2, 4), (3, 4), (4, 4)]
        assert [h.get("phase") for h in result.history] == ["reward_model"] * 2 + [None] * 2
        assert (tmp_path / "reward_model" / "config.json").exists()
    else:
        assert [s[:2] for s in steps] == [(1, 2), (2, 2)]
        assert len(result.history) == 2
    assert result.final_loss == steps[-1][2]
    expected_file = "adapter_model.safetensors" if kind == "lora" else "model.safetensors"
    assert (result.model_dir / expected_file).exists()

    eval_pairs = holdout_eval_pairs(split)
    assert eval_pairs
    seen = []
    options = EvalOptions(batch_size=4, max_length=64, generation_prompts=0)
    report = evaluate_candidate(result.model_dir, tiny_dir, eval_pairs, beta=plan.hyperparameters["beta"],
                                options=options, device="cpu",
                                on_progress=lambda done, total: seen.append((done, total)))
    assert report.n_pairs == len(eval_pairs)
    for value in (report.pref_accuracy_reference.value, report.pref_accuracy_candidate.value, report.reward_accuracy):
        assert 0.0 <= value <= 1.0
    distinct = len(encode_pairs(load_tokenizer(tiny_dir), eval_pairs, 64).sequences)  # each answer scored once
    assert seen[-1] == (2 * distinct, 2 * distinct)
    # Two steps barely move a model: the candidate differs from the reference, but not by much.
    assert report.reward_margin != 0.0


def test_reference_and_candidate_score_identically_before_training(tiny_dir):
    """With an untouched adapter the candidate is the reference: same scores, zero margin."""
    from peft import LoraConfig, get_peft_model

    from alignloop.evaluation.scoring import encode_pairs, score_pairs
    from alignloop.models import load_causal_lm, load_tokenizer

    split = split_snapshot(EMPTY_THUMBS, pairs_table(60, n_prompts=20), 0.3)
    pairs = holdout_eval_pairs(split)
    tokenizer = load_tokenizer(tiny_dir)
    model = get_peft_model(load_causal_lm(tiny_dir), LoraConfig(r=4, target_modules=["q_proj"])).eval()
    encoded = encode_pairs(tokenizer, pairs, max_length=64)
    kw = dict(pad_id=tokenizer.pad_token_id, batch_size=4, device="cpu")
    with_adapter = score_pairs(model, encoded, **kw)
    with model.disable_adapter():
        without = score_pairs(model, encoded, **kw)
    assert with_adapter.logp_chosen == pytest.approx(without.logp_chosen, abs=1e-5)
    assert all(n > 0 for n in with_adapter.n_chosen)


def test_a_skip_plan_does_not_train(tmp_path, tiny_dir):
    split = split_snapshot(EMPTY_THUMBS, EMPTY_PAIRS, 0.3)
    with pytest.raises(DataError, match="skip"):
        train_candidate(Plan("skip", {}, ("thin",)), split, tiny_dir, tmp_path)
