"""The planner: which method for which data shape, and the reasons it gives."""

from __future__ import annotations

import random
from datetime import datetime

import pyarrow as pa
import pytest

from pipeline.config import PlanningSettings, TrainingSettings
from pipeline.planner import choose_method
from pipeline.schema import PAIRS_SCHEMA, UNPAIRED_SCHEMA
from pipeline.shape import measure_shape

TS = datetime(2026, 10, 1)


def pairs_table(n: int, flip_rate: float = 0.0, n_prompts: int = 50, seed: int = 0) -> pa.Table:
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


def plan_for(unpaired: pa.Table, pairs: pa.Table, **training):
    shape = measure_shape(unpaired, pairs, holdout_fraction=0.2)
    return choose_method(shape, TrainingSettings(**training), PlanningSettings())


def test_clean_pairs_choose_dpo():
    plan = plan_for(EMPTY_THUMBS, pairs_table(600, flip_rate=0.0))
    assert plan.method == "dpo"
    assert plan.hyperparameters["loss_type"] == ["sigmoid"]
    assert any("flip rate 0.0%" in r for r in plan.reasons)


def test_noisy_pairs_choose_ipo():
    plan = plan_for(EMPTY_THUMBS, pairs_table(600, flip_rate=0.3))
    assert plan.method == "ipo"
    assert plan.hyperparameters["loss_type"] == ["ipo"]
    assert any(">= noise_threshold" in r for r in plan.reasons)


def test_thumbs_only_choose_kto_with_balanced_weights():
    plan = plan_for(thumbs_table(300, 100), EMPTY_PAIRS)
    hp = plan.hyperparameters
    assert plan.method == "kto"
    ratio = hp["desirable_weight"] * 300 / (hp["undesirable_weight"] * 100)
    assert 1.0 <= ratio <= 4 / 3 + 1e-9


def test_one_sided_thumbs_are_too_thin():
    plan = plan_for(thumbs_table(400, 0), EMPTY_PAIRS)
    assert plan.method == "skip"
    assert "rarer label" in plan.reasons[-1]


def test_too_little_data_skips_and_says_what_is_missing():
    plan = plan_for(thumbs_table(5, 5), pairs_table(10))
    assert plan.method == "skip"
    assert plan.hyperparameters == {}
    assert "need 32" in plan.reasons[-1] and "need 64" in plan.reasons[-1]


def test_pairs_beat_thumbs_when_both_suffice():
    plan = plan_for(thumbs_table(200, 200), pairs_table(600))
    assert plan.method == "dpo"
    assert any("thumbs rows left out" in r for r in plan.reasons)


def test_rlhf_only_when_asked_and_affordable():
    pairs = pairs_table(600)
    shape = measure_shape(EMPTY_THUMBS, pairs, 0.2)
    assert choose_method(shape, TrainingSettings(), PlanningSettings(rlhf_compute_budget=10)).method == "dpo"
    cheap = choose_method(shape, TrainingSettings(method="rlhf"), PlanningSettings(rlhf_compute_budget=1))
    assert cheap.method == "dpo" and any("not affordable" in r for r in cheap.reasons)
    rich = choose_method(shape, TrainingSettings(method="rlhf"), PlanningSettings(rlhf_compute_budget=3))
    assert rich.method == "rlhf"


@pytest.mark.parametrize("method", ["dpo", "ipo"])
def test_forced_pair_method_still_needs_pairs(method):
    assert plan_for(thumbs_table(300, 300), EMPTY_PAIRS, method=method).method == "skip"


def test_kto_raises_batch_size_for_its_kl_term():
    plan = plan_for(thumbs_table(300, 300), EMPTY_PAIRS, per_device_batch_size=1)
    assert plan.hyperparameters["per_device_batch_size"] == 2


def test_flip_rate_estimate_tracks_injected_noise():
    for rate in (0.05, 0.2, 0.35):
        shape = measure_shape(EMPTY_THUMBS, pairs_table(4000, flip_rate=rate, seed=1), 0.2)
        assert shape.pair_agreement.flip_rate == pytest.approx(rate, abs=0.03)


def test_noise_unknown_without_repeated_pairs():
    shape = measure_shape(EMPTY_THUMBS, pairs_table(100, n_prompts=100), 0.2)
    assert shape.pair_agreement.flip_rate is None
    plan = choose_method(shape, TrainingSettings(), PlanningSettings(min_pairs=10))
    assert plan.method == "dpo" and any("noise unknown" in r for r in plan.reasons)
