"""The planner: which method for which data shape, with which hyperparameters, and the reasons it gives."""

from __future__ import annotations

import math
import random
import re
from dataclasses import replace
from datetime import datetime

import pyarrow as pa
import pytest

from alignloop.benchmarks.regimes import empty_thumbs, synthetic_pairs
from alignloop.config import PlanningSettings, TrainingSettings
from alignloop.planner import RULES, choose_method, kto_read_counts, kto_weights
from alignloop.schema import PAIRS_SCHEMA, UNPAIRED_SCHEMA
from alignloop.profile import DataProfile, NoiseEstimate, measure_profile

TS = datetime(2026, 10, 1)


def pairs_table(n: int, flip_rate: float = 0.0, n_prompts: int = 50, seed: int = 0) -> pa.Table:
    """Pairs of a good and a bad answer over n_prompts prompts (repeated when n > n_prompts); used by other tests."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        good, bad = f"good answer {i % n_prompts}", f"bad answer {i % n_prompts}"
        if rng.random() < flip_rate:
            good, bad = bad, good
        rows.append({"event_id": f"p{i}", "source": "s", "ts": TS, "user_id": None, "model_version": "v",
                     "prompt": [{"role": "user", "content": f"question {i % n_prompts}"}],
                     "chosen": good, "rejected": bad})
    return pa.Table.from_pylist(rows, schema=PAIRS_SCHEMA)


def thumbs_table(n_up: int, n_down: int, n_prompts: int = 50) -> pa.Table:
    rows = [{"event_id": f"u{i}", "source": "s", "ts": TS, "user_id": None, "model_version": "v",
             "prompt": [{"role": "user", "content": f"question {i % n_prompts}"}],
             "completion": f"answer {i}", "label": i < n_up} for i in range(n_up + n_down)]
    return pa.Table.from_pylist(rows, schema=UNPAIRED_SCHEMA)


EMPTY_PAIRS = pairs_table(0)
EMPTY_THUMBS = thumbs_table(0, 0)


def noise(rate: float, signal: str = "reward_model", support: int = 500, enough: bool = True) -> NoiseEstimate:
    return NoiseEstimate(signal, rate, max(rate - 0.03, 0.0), rate + 0.03, support, "pairs", enough)


def shape(pairs: int = 0, up: int = 0, down: int = 0, thumb_pairs: int = 0, flip: NoiseEstimate | None = None,
          thumb_flip: NoiseEstimate | None = None) -> DataProfile:
    """A shape with these training counts (train == all: the planner reads the training counts)."""
    return DataProfile(
        n_unpaired=up + down, n_up=up, n_pairs=pairs, n_unpaired_train=up + down, n_up_train=up, n_pairs_train=pairs,
        n_prompts=max(pairs, (up + down) // 4), up_share=up / (up + down) if up + down else None,
        pairable_prompts_train=thumb_pairs // 4, pairs_from_thumbs_train=thumb_pairs, pair_noise=flip,
        thumb_noise=thumb_flip, noise_signals=tuple(n for n in (flip, thumb_flip) if n), chosen_longer_share=None,
        up_mean_chars=None,
        down_mean_chars=None, truncation=None, first_ts=None, last_ts=None)


def thumb_noise(rate: float) -> NoiseEstimate:
    return NoiseEstimate("reward_model_thumbs", rate, max(rate - 0.03, 0.0), rate + 0.03, 800, "thumbs", True)


# shape -> (method, DPO loss or None, rows trained on)
CASES = {
    "clean pairs": (shape(600, flip=noise(0.02)), "ipo", ["ipo"], "pairs"),
    "pairs, noise unknown": (shape(600), "ipo", ["ipo"], "pairs"),
    "pairs, noise below threshold": (shape(600, flip=noise(0.10)), "ipo", ["ipo"], "pairs"),
    "noisy pairs, interval reaching below 25%": (shape(600, flip=noise(0.25)), "ipo", ["ipo"], "pairs"),
    "noisy pairs from repeated votes": (shape(600, flip=noise(0.30, "repeated_pairs")), "dpo", ["sigmoid"], "pairs"),
    "noisy pairs and unpairable thumbs": (shape(600, 100, 300, flip=noise(0.30)), "dpo", ["sigmoid"], "pairs"),
    "thumbs only, no prompt with both labels": (shape(0, 200, 200), "kto", "kto", "thumbs"),
    "thumbs only, 1:5, unpairable": (shape(0, 60, 300), "kto", "kto", "thumbs"),
    "thumbs only, 5:1, too few pairs from them": (shape(0, 300, 60, thumb_pairs=20), "kto", "kto", "thumbs"),
    "thumbs only, pairable": (shape(0, 200, 200, thumb_pairs=300), "ipo", ["ipo"], "pairs+thumb_pairs"),
    "thumbs only, making fewer than 100 pairs": (shape(0, 200, 200, thumb_pairs=99), "kto", "kto", "thumbs"),
    "thumbs only, pairable, heavily flipped": (shape(0, 200, 200, thumb_pairs=300, thumb_flip=thumb_noise(0.3)), "kto",
                                               "kto", "thumbs"),
    "thumbs only, pairable, flips straddling 25%": (shape(0, 200, 200, thumb_pairs=300, thumb_flip=thumb_noise(0.26)),
                                                    "ipo", ["ipo"], "pairs+thumb_pairs"),
    "one-sided thumbs making few pairs": (shape(0, 400, 4, thumb_pairs=40, thumb_flip=thumb_noise(0.3)), "ipo",
                                          ["ipo"], "pairs+thumb_pairs"),
    "thumbs only, 1:5, pairable": (shape(0, 60, 300, thumb_pairs=120), "ipo", ["ipo"], "pairs+thumb_pairs"),
    "mixed: pairs and pairable thumbs": (shape(300, 200, 200, thumb_pairs=400, flip=noise(0.05)), "ipo", ["ipo"],
                                         "pairs+thumb_pairs"),
    "mixed and noisy": (shape(300, 200, 200, thumb_pairs=400, flip=noise(0.3)), "dpo", ["sigmoid"],
                        "pairs+thumb_pairs"),
    "mixed, noise interval straddling 25%": (shape(300, 200, 200, thumb_pairs=400, flip=noise(0.26)), "ipo",
                                             ["ipo"], "pairs+thumb_pairs"),
    "pairs and unpairable thumbs": (shape(300, 200, 200), "ipo", ["ipo"], "pairs"),
    "one-sided thumbs, no pairs": (shape(0, 400, 0), "skip", None, None),
    "one-sided thumbs but pairable": (shape(0, 400, 4, thumb_pairs=40), "ipo", ["ipo"], "pairs+thumb_pairs"),
    "few pairs, one-sided pairable thumbs": (shape(10, 400, 4, thumb_pairs=40), "ipo", ["ipo"], "pairs+thumb_pairs"),
    "too little of everything": (shape(10, 5, 5), "skip", None, None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_method_for_each_shape(name):
    s, method, loss, train_on = CASES[name]
    plan = choose_method(s, TrainingSettings(), PlanningSettings())
    assert plan.method == method, plan.reasons
    if method == "skip":
        assert plan.hyperparameters == {} and "too little data" in plan.reasons[-1]
        return
    assert plan.hyperparameters["train_on"] == train_on
    assert plan.hyperparameters["loss_type"] == loss


def test_with_a_noise_threshold_set_noisy_pairs_smooth_labels_by_the_estimated_flip_rate():
    planning = PlanningSettings(noise_threshold=0.15)
    plan = choose_method(shape(600, flip=noise(0.25)), TrainingSettings(), planning)
    assert plan.hyperparameters["loss_type"] == ["robust"] and plan.hyperparameters["label_smoothing"] == 0.25
    assert any("25.0%" in r and "lies at or above noise_threshold 15.0%: robust DPO" in r and "reward_model" in r
               for r in plan.reasons)
    capped = choose_method(shape(600, flip=noise(0.47)), TrainingSettings(), planning)
    assert capped.hyperparameters["label_smoothing"] == 0.4


def test_by_default_heavily_flipped_pairs_train_plain_dpo_and_the_plan_says_why():
    plan = choose_method(shape(600, flip=noise(0.40)), TrainingSettings(), PlanningSettings())
    assert plan.method == "dpo" and plan.hyperparameters["loss_type"] == ["sigmoid"]
    assert plan.hyperparameters["train_on"] == "pairs" and plan.hyperparameters.get("label_smoothing", 0.0) == 0.0
    said = next(r for r in plan.reasons if "40.0%" in r)
    assert said.endswith("the 95% interval 37.0%–43.0% lies at or above dpo_noise_threshold 25.0%: DPO")
    assert any(r.startswith("DPO: on heavily flipped pairs") and "drawn6151-16" in r and "KTO 6.2, IPO 7.0" in r
               for r in plan.reasons), plan.reasons
    # thumbs beside heavily flipped pairs: DPO on the pairs plus the pairs the thumbs make, never KTO
    mixed = choose_method(shape(300, 200, 200, thumb_pairs=400, flip=noise(0.40)), TrainingSettings(),
                          PlanningSettings())
    assert (mixed.method, mixed.hyperparameters["train_on"]) == ("dpo", "pairs+thumb_pairs")


@pytest.mark.parametrize("rate,said", [
    (0.20, "the 95% interval 17.0%–23.0% lies below dpo_noise_threshold 25.0%: IPO"),
    (0.26, "but the 95% interval 23.0%–29.0% holds dpo_noise_threshold 25.0% inside it: too wide to act on, so "
           "treated as low: IPO")])
def test_an_estimate_not_wholly_past_the_dpo_threshold_keeps_ipo(rate, said):
    plan = choose_method(shape(600, flip=noise(rate)), TrainingSettings(), PlanningSettings())
    assert plan.method == "ipo" and plan.hyperparameters["loss_type"] == ["ipo"]
    assert any(r.endswith(said) for r in plan.reasons), plan.reasons


def test_heavily_flipped_thumbs_train_kto_on_the_thumbs_and_the_plan_says_why():
    plan = choose_method(shape(0, 300, 300, thumb_pairs=900, thumb_flip=thumb_noise(0.33)), TrainingSettings(),
                         PlanningSettings())
    assert plan.method == "kto" and plan.hyperparameters["train_on"] == "thumbs"
    said = next(r for r in plan.reasons if "33.0%" in r)
    assert said.startswith("estimated thumb flip rate 33.0% (reward_model_thumbs, from 800 thumbs)")
    assert said.endswith("the 95% interval 30.0%–36.0% lies at or above kto_noise_threshold 25.0%: KTO")
    assert any("drawn2311-03" in r and "drawn5077-26" in r for r in plan.reasons)
    # 0.5 switches it off; the pairs' rule does not read the thumbs' estimate
    off = choose_method(shape(0, 300, 300, thumb_pairs=900, thumb_flip=thumb_noise(0.33)), TrainingSettings(),
                        PlanningSettings(kto_noise_threshold=0.5))
    assert off.method == "ipo"
    assert any("holds kto_noise_threshold 50.0%" not in r and r.endswith("lies below kto_noise_threshold 50.0%: IPO")
               for r in off.reasons)
    mixed = choose_method(shape(300, 300, 300, thumb_pairs=900, flip=noise(0.05), thumb_flip=thumb_noise(0.33)),
                          TrainingSettings(), PlanningSettings())
    assert mixed.method == "ipo"


@pytest.mark.parametrize("rate,said", [
    (0.15, "the 95% interval 12.0%–18.0% lies below kto_noise_threshold 25.0%: IPO"),
    (0.26, "but the 95% interval 23.0%–29.0% holds kto_noise_threshold 25.0% inside it: too wide to act on, so "
           "treated as low: IPO")])
def test_thumbs_whose_flips_are_not_wholly_past_the_threshold_keep_ipo_on_their_pairs(rate, said):
    plan = choose_method(shape(0, 300, 300, thumb_pairs=900, thumb_flip=thumb_noise(rate)), TrainingSettings(),
                         PlanningSettings())
    assert plan.method == "ipo" and plan.hyperparameters["train_on"] == "pairs+thumb_pairs"
    assert any(r.endswith(said) for r in plan.reasons), plan.reasons


def test_thumbs_making_few_pairs_train_kto_on_every_thumb_unless_switched_off():
    plan = choose_method(shape(0, 150, 150, thumb_pairs=60), TrainingSettings(), PlanningSettings())
    assert plan.method == "kto" and plan.hyperparameters["train_on"] == "thumbs"
    assert any(r.endswith("make 60 pairs on 15 prompts with an up and a down answer: fewer than "
                          "kto_below_thumb_pairs 100") for r in plan.reasons), plan.reasons
    assert any("KTO on all 300 thumbs instead of IPO on 60 pairs" in r and "drawn5077-11" in r for r in plan.reasons)
    at = choose_method(shape(0, 150, 150, thumb_pairs=100), TrainingSettings(), PlanningSettings())
    assert at.method == "ipo"
    off = choose_method(shape(0, 150, 150, thumb_pairs=60), TrainingSettings(), PlanningSettings(kto_below_thumb_pairs=0))
    assert off.method == "ipo" and any("thumb label noise not measured" in r for r in off.reasons)


def test_dpo_for_noise_is_off_at_half_and_robust_dpo_set_lower_comes_first():
    off = choose_method(shape(600, flip=noise(0.40)), TrainingSettings(), PlanningSettings(dpo_noise_threshold=0.5))
    assert off.method == "ipo"
    assert any("lies below noise_threshold 50.0%: IPO" in r for r in off.reasons)
    robust = choose_method(shape(600, flip=noise(0.40)), TrainingSettings(), PlanningSettings(noise_threshold=0.3))
    assert robust.method == "dpo" and robust.hyperparameters["loss_type"] == ["robust"]
    assert any("lies at or above noise_threshold 30.0%: robust DPO" in r for r in robust.reasons)
    # between the two thresholds: plain DPO's applies
    between = choose_method(shape(600, flip=noise(0.30)), TrainingSettings(), PlanningSettings(noise_threshold=0.4))
    assert (between.method, between.hyperparameters["loss_type"]) == ("dpo", ["sigmoid"])
    # the thumbs' threshold does not move the pairs' rule
    assert choose_method(shape(600, flip=noise(0.40)), TrainingSettings(),
                         PlanningSettings(kto_noise_threshold=0.5)).method == "dpo"


def test_an_estimate_without_enough_support_is_not_acted_on():
    weak = noise(0.3, enough=False)
    s = replace(shape(600), noise_signals=(weak,))
    plan = choose_method(s, TrainingSettings(), PlanningSettings(noise_threshold=0.15))
    assert plan.hyperparameters["loss_type"] == ["ipo"]
    assert any("30.0% (reward_model), but from 500 pairs, too few to act on" in r and r.endswith(": IPO")
               for r in plan.reasons)


def test_an_interval_that_holds_the_threshold_is_too_wide_to_act_on_and_the_plan_says_so():
    wide = NoiseEstimate("reward_model", 0.348, 0.0, 0.40, 2354, "pairs", True)
    plan = choose_method(shape(2354, flip=wide), TrainingSettings(), PlanningSettings(noise_threshold=0.15))
    assert plan.method == "ipo" and plan.hyperparameters["loss_type"] == ["ipo"]
    said = next(r for r in plan.reasons if "34.8%" in r)
    assert "but the 95% interval 0.0%–40.0% holds noise_threshold 15.0% inside it: too wide to act on" in said
    assert said.endswith(": IPO")


@pytest.mark.parametrize("low,high,loss", [(0.16, 0.40, ["robust"]), (0.02, 0.14, ["ipo"])])
def test_an_interval_wholly_on_one_side_of_the_threshold_is_acted_on(low, high, loss):
    est = NoiseEstimate("intransitive_triads", (low + high) / 2, low, high, 400, "triads", True)
    plan = choose_method(shape(600, flip=est), TrainingSettings(), PlanningSettings(noise_threshold=0.15))
    assert plan.hyperparameters["loss_type"] == loss
    side = "lies at or above" if loss == ["robust"] else "lies below"
    assert any(f"{side} noise_threshold 15.0%" in r for r in plan.reasons)


@pytest.mark.parametrize("up,down", [(300, 100), (100, 300), (60, 300), (300, 60), (200, 200), (1, 999)])
def test_kto_weights_put_the_weighted_ratio_in_the_advised_range(up, down):
    plan = choose_method(shape(0, up, down), TrainingSettings(), PlanningSettings(min_minority_share=0.0))
    hp = plan.hyperparameters
    assert plan.method == "kto"
    # On the rows the steps read (part of an epoch included), which is what TRL checks.
    read_up, read_down = kto_read_counts(up, down, hp["max_steps"] * hp["per_device_batch_size"])
    ratio = hp["desirable_weight"] * read_up / (hp["undesirable_weight"] * read_down)
    assert 1.0 <= ratio <= 4 / 3
    assert min(hp["desirable_weight"], hp["undesirable_weight"]) == 1.0


def test_kto_weights_come_from_training_rows_not_all_rows():
    s = replace(shape(0, 300, 100), n_up=1000, n_unpaired=1100)   # the held-out rows are mostly up
    hp = choose_method(s, TrainingSettings(), PlanningSettings()).hyperparameters
    assert hp["undesirable_weight"] * 100 == pytest.approx(300, rel=0.01)
    assert kto_weights(0, 10) == (1.0, 1.0)


def test_steps_and_beta_scale_with_data_size_and_budget():
    small = choose_method(shape(100), TrainingSettings(), PlanningSettings()).hyperparameters
    large = choose_method(shape(4000), TrainingSettings(), PlanningSettings()).hyperparameters
    assert small["max_steps"] < large["max_steps"] <= 400
    assert small["beta"] > large["beta"] == 0.5      # IPO's tau, at its default from 1000 rows on
    assert large["per_device_batch_size"] > small["per_device_batch_size"]
    budget = choose_method(shape(4000), TrainingSettings(), PlanningSettings(budget_minutes=2, seconds_per_step=4))
    assert budget.hyperparameters["max_steps"] == 30
    assert any("budget_minutes" in r for r in budget.reasons)
    explicit = choose_method(shape(4000), TrainingSettings(max_steps=7, beta=0.3), PlanningSettings())
    assert explicit.hyperparameters["max_steps"] == 7 and explicit.hyperparameters["beta"] == 0.3


def test_steps_capped_below_the_passes_say_how_much_of_the_data_they_read():
    small = choose_method(shape(100), TrainingSettings(), PlanningSettings())
    assert any(re.match(r"\d+ steps: about 2 passes over \d+ rows", r) for r in small.reasons), small.reasons
    large = choose_method(shape(4000), TrainingSettings(), PlanningSettings())   # 2 passes would be 1000 steps
    said = next(r for r in large.reasons if r.startswith("400 steps"))
    m = re.fullmatch(r"400 steps: capped at 400, ([\d.]+) passes over (\d+) rows at 8 a step \(2 passes would take "
                     r"(\d+); set training\.max_steps for more\)", said)
    assert m, said
    rows = int(m[2])
    assert float(m[1]) == pytest.approx(400 * 8 / rows, abs=0.01) and float(m[1]) < 2
    assert int(m[3]) == math.ceil(2 * rows / 8) > 400


def test_rlhf_only_when_asked_and_affordable():
    s = shape(600)
    assert choose_method(s, TrainingSettings(), PlanningSettings(rlhf_compute_budget=10)).method == "ipo"
    cheap = choose_method(s, TrainingSettings(method="rlhf"), PlanningSettings(rlhf_compute_budget=1))
    assert cheap.method == "ipo" and any("not affordable" in r for r in cheap.reasons)
    rich = choose_method(s, TrainingSettings(method="rlhf"), PlanningSettings(rlhf_compute_budget=3))
    assert rich.method == "rlhf"


@pytest.mark.parametrize("method", ["dpo", "ipo"])
def test_forced_pair_method_still_needs_pairs(method):
    assert choose_method(shape(0, 300, 300), TrainingSettings(method=method), PlanningSettings()).method == "skip"
    forced = choose_method(shape(600, flip=noise(0.3)), TrainingSettings(method=method), PlanningSettings())
    assert forced.method == method


@pytest.mark.parametrize(("method", "data", "loss"), [
    ("ipo", shape(600), ["ipo", "sft"]), ("dpo", shape(600), ["sigmoid", "sft"]),
    ("auto", shape(600, flip=noise(0.3)), ["robust", "sft"])])
def test_an_sft_weight_adds_trls_sft_term_to_a_pair_methods_loss_and_the_plan_says_so(method, data, loss):
    planning = PlanningSettings(noise_threshold=0.2)  # noisy pairs: the planner's robust DPO
    plan = choose_method(data, TrainingSettings(method=method, sft_weight=0.5), planning)
    hp = plan.hyperparameters
    assert (hp["loss_type"], hp["loss_weights"], hp["sft_weight"]) == (loss, [1.0, 0.5], 0.5)
    assert plan.method == ("dpo" if method == "auto" else method)
    assert any(r.startswith(f"SFT term on the chosen answers, weight 0.5 (training.sft_weight): loss_type "
                            f"{loss[0]} + sft with weights 1 + 0.5") for r in plan.reasons)
    off = choose_method(data, TrainingSettings(method=method), planning)
    assert off.hyperparameters["loss_type"] == loss[:1] and "loss_weights" not in off.hyperparameters
    assert off.hyperparameters["sft_weight"] == 0.0 and not any("SFT" in r for r in off.reasons)


def test_an_sft_weight_does_not_apply_to_kto_the_planner_chose_and_an_explicit_kto_refuses_it(tmp_path):
    from alignloop.config import settings_from_dict
    from alignloop.errors import ConfigError

    plan = choose_method(shape(0, 200, 200), TrainingSettings(sft_weight=0.5), PlanningSettings())
    assert plan.method == "kto" and "sft" not in plan.hyperparameters["loss_type"]
    assert "sft_weight" not in plan.hyperparameters and "loss_weights" not in plan.hyperparameters
    assert ("training.sft_weight 0.5 does not apply to kto: its TRL trainer has no SFT term, so it trains without "
            "one") in plan.reasons
    raw = {"target": "x", "base_model": {"tiny": True}, "sources": [{"name": "a"}]}
    for method in ("kto", "rlhf"):
        with pytest.raises(ConfigError) as err:
            settings_from_dict({**raw, "training": {"method": method, "sft_weight": 0.5}}, base_dir=tmp_path)
        assert str(err.value) == (f"config: training: sft_weight 0.5 adds an SFT term to a pair method's loss, and "
                                  f"method {method} has none; set sft_weight to 0 or method to dpo or ipo")
    with pytest.raises(ConfigError, match=r"training.sft_weight: Input should be greater than or equal to 0"):
        settings_from_dict({**raw, "training": {"sft_weight": -0.1}}, base_dir=tmp_path)
    assert settings_from_dict({**raw, "training": {"method": "kto"}}, base_dir=tmp_path).training.sft_weight == 0.0


def test_kto_raises_batch_size_for_its_kl_term():
    plan = choose_method(shape(0, 300, 300), TrainingSettings(per_device_batch_size=1), PlanningSettings())
    assert plan.hyperparameters["per_device_batch_size"] == 2


def test_each_rule_reads_alone():
    # Every rule is a function of the facts alone, with a docstring saying when it applies.
    assert len(RULES) >= 6 and all(rule.__doc__ for rule in RULES)


def _thumbs(n_prompts: int, per_prompt: int, up_share: float) -> pa.Table:
    rng = random.Random(0)
    rows = []
    for i in range(n_prompts * per_prompt):
        rows.append({"event_id": f"u{i}", "source": "s", "ts": TS, "user_id": None, "model_version": "v",
                     "prompt": [{"role": "user", "content": f"q{i // per_prompt}"}], "completion": f"answer {i}",
                     "label": rng.random() < up_share})
    return pa.Table.from_pylist(rows, schema=UNPAIRED_SCHEMA)


def test_measured_mixed_data_trains_on_pairs_and_pairs_from_thumbs():
    pairs, _ = synthetic_pairs(120, 0.0, seed=3)
    s = measure_profile(_thumbs(60, 4, 0.5), pairs, holdout_fraction=0.2, model_noise=False)
    plan = choose_method(s, TrainingSettings(), PlanningSettings())
    assert s.pairs_from_thumbs_train > 0
    assert plan.method == "ipo" and plan.hyperparameters["train_on"] == "pairs+thumb_pairs"


@pytest.mark.slow
def test_noisy_pairs_never_compared_twice_are_planned_as_noisy():
    pairs, _ = synthetic_pairs(2000, 0.3, seed=2)
    s = measure_profile(empty_thumbs(), pairs, holdout_fraction=0.2)
    plan = choose_method(s, TrainingSettings(), PlanningSettings(noise_threshold=0.15))
    assert s.pair_noise.signal == "reward_model"
    assert plan.hyperparameters["loss_type"] == ["robust"]
    assert plan.hyperparameters["label_smoothing"] == pytest.approx(0.3, abs=0.08)


def test_plan_json_round_trips_the_shape():
    s = shape(600, flip=noise(0.2))
    assert DataProfile.from_dict(s.to_dict()) == s


def test_steps_and_batch_left_unset_or_written_as_null_are_the_planners_to_choose():
    """"Unset" is None in the schema, not "absent from the file": null plans exactly as leaving the key out,
    and only a number fixes the value."""
    data = shape(4000)
    absent = choose_method(data, TrainingSettings(), PlanningSettings())
    null = choose_method(data, TrainingSettings.model_validate({"max_steps": None, "per_device_batch_size": None}),
                         PlanningSettings())
    assert TrainingSettings().max_steps is None and TrainingSettings().per_device_batch_size is None
    assert absent.hyperparameters == null.hyperparameters
    assert absent.hyperparameters["per_device_batch_size"] == 8 and absent.hyperparameters["max_steps"] == 400
    fixed = choose_method(data, TrainingSettings(max_steps=30, per_device_batch_size=4), PlanningSettings())
    assert (fixed.hyperparameters["max_steps"], fixed.hyperparameters["per_device_batch_size"]) == (30, 4)
