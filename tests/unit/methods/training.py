"""One method, end to end on the tiny model: the plan asks for it, its registered builder trains a few
steps with TRL's real trainer, the candidate is saved and evaluation scores it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alignloop.config import PlanningSettings, TrainingSettings
from alignloop.datasets import holdout_eval_pairs, split_snapshot
from alignloop.evaluation.candidate import EvalOptions, evaluate_candidate
from alignloop.evaluation.scoring import encode_pairs
from alignloop.models import load_tokenizer
from alignloop.planner import Plan, choose_method
from alignloop.profile import measure_profile
from alignloop.training import train_candidate
from tests.unit.test_planner import EMPTY_PAIRS, EMPTY_THUMBS, pairs_table, thumbs_table


def small_plan(unpaired, pairs, **training: Any) -> Plan:
    shape = measure_profile(unpaired, pairs, 0.3)
    return choose_method(shape, TrainingSettings(max_steps=2, per_device_batch_size=2, max_length=64, **training),
                         PlanningSettings(min_pairs=8, min_unpaired=8, kto_below_thumb_pairs=8, rlhf_compute_budget=3))


def feedback(data: str):
    """(unpaired, pairs): 60 pairs on 20 prompts, or 80 thumbs (40 up, 40 down) on 20 prompts."""
    if data == "pairs":
        return EMPTY_THUMBS, pairs_table(60, n_prompts=20)
    return thumbs_table(40, 40, n_prompts=20), EMPTY_PAIRS


def trains_saves_and_evaluates(tmp_path: Path, tiny_dir: Path, data: str, training: dict[str, Any],
                               method: str, kind: str) -> None:
    unpaired, pairs = feedback(data)
    plan = small_plan(unpaired, pairs, **training)
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
