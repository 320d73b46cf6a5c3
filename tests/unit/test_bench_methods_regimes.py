"""The methods benchmark's regimes: what each kind of feedback holds, the random draw, and the steps it trains."""

from __future__ import annotations

from pathlib import Path

import pytest

from alignloop.benchmarks.compact_loop import Budget
from alignloop.benchmarks.methods import HELDOUT_SEED, TUNING_REGIMES, heldout_regimes, summarise_set
from alignloop.benchmarks.regimes import Regime, draw_regimes, quality, synthetic_pairs, synthetic_thumbs
from alignloop.conversions import pairs_from_thumbs

ROOT = Path(__file__).resolve().parents[2]


def test_thumbs_with_one_answer_a_prompt_make_no_pair():
    thumbs, pairs = Regime("u", n_thumb_prompts=60, answers_per_prompt=1).build(0)
    assert thumbs.num_rows == 60 and pairs.num_rows == 0
    assert pairs_from_thumbs(thumbs).num_rows == 0
    paired, _ = Regime("p", n_thumb_prompts=60, answers_per_prompt=4).build(0)
    assert pairs_from_thumbs(paired).num_rows > 0


@pytest.mark.parametrize("up_share", [1 / 11, 10 / 11])
def test_imbalanced_thumbs_hold_the_asked_share_of_ups(up_share):
    thumbs = synthetic_thumbs(100, 4, up_share, seed=2)
    assert sum(thumbs.column("label").to_pylist()) == round(up_share * 400)


def test_length_bias_labels_the_longer_answer_and_leaves_unbiased_rows_alone():
    plain, wrong_plain = synthetic_pairs(400, 0.0, seed=5)
    biased, wrong = synthetic_pairs(400, 0.0, seed=5, length_bias=0.8)
    lengths = [(len(c.split()), len(r.split())) for c, r in zip(biased.column("chosen").to_pylist(),
                                                               biased.column("rejected").to_pylist(), strict=True)]
    unequal = [c > r for c, r in lengths if c != r]
    assert sum(unequal) / len(unequal) > 0.8 and wrong_plain == 0 and wrong > 40
    # the count of wrong labels is the count whose chosen answer the hidden rule ranks lower
    assert wrong == sum(quality(c) < quality(r) for c, r in zip(biased.column("chosen").to_pylist(),
                                                                biased.column("rejected").to_pylist(), strict=True))
    assert plain.equals(synthetic_pairs(400, 0.0, seed=5)[0])


def test_flipped_thumbs_turn_the_asked_share():
    clean = synthetic_thumbs(200, 2, 0.5, seed=1).column("label").to_pylist()
    noisy = synthetic_thumbs(200, 2, 0.5, seed=1, flip_rate=0.3).column("label").to_pylist()
    changed = sum(a != b for a, b in zip(clean, noisy, strict=True)) / len(clean)
    assert 0.2 < changed < 0.4


def test_the_draw_is_fixed_by_its_seed_and_spans_every_parameter():
    drawn = draw_regimes(7, 40)
    assert drawn == draw_regimes(7, 40) and drawn != draw_regimes(8, 40)
    assert {r.answers_per_prompt for r in drawn if r.n_thumb_prompts} == {1, 2, 4}
    assert any(r.n_pairs and not r.n_thumb_prompts for r in drawn) and any(r.n_thumb_prompts and not r.n_pairs
                                                                          for r in drawn)
    assert any(r.length_bias for r in drawn) and any(not r.length_bias for r in drawn)
    assert min(r.judgements for r in drawn) < 500 < 5000 < max(r.judgements for r in drawn)
    assert min(r.up_share for r in drawn) < 0.25 and max(r.up_share for r in drawn) > 0.75
    assert min(r.epochs for r in drawn) < 2 < 8 < max(r.epochs for r in drawn)


def test_the_held_out_seed_is_recorded_in_benchmarks_md_and_is_not_a_tuning_regime():
    assert f"seed {HELDOUT_SEED}" in (ROOT / "BENCHMARKS.md").read_text()
    assert len(heldout_regimes()) >= 20
    assert not {r.name for r in heldout_regimes()} & {r.name for r in TUNING_REGIMES}


def test_steps_follow_the_passes_over_the_data_within_the_bounds():
    budget = Budget(pairs_per_step=8, min_steps=20, max_steps=100)
    assert budget.steps_for(Regime("a", n_pairs=100, epochs=4)) == 50
    assert budget.steps_for(Regime("b", n_thumb_prompts=100, answers_per_prompt=4, epochs=2)) == 50   # 400 thumbs
    assert budget.steps_for(Regime("c", n_pairs=20, epochs=1)) == 20
    assert budget.steps_for(Regime("d", n_pairs=20_000)) == 100
    assert Budget(steps=7).steps_for(Regime("e", n_pairs=20_000)) == 7


def _output(seed: int, choice: str, acc: dict[str, float]) -> dict:
    return {"regime": "r", "seed": seed, "choice": choice, "reasons": ["why"], "estimated_flip_rate": None,
            "noise_signal": None, "smoothing": 0.0,
            "arms": [{"arm": a, "accuracy": v, "drift": 0.1} for a, v in acc.items()]}


def test_the_planner_scores_the_arm_it_chose_for_each_seed_and_a_skip_scores_the_base():
    outputs = [_output(0, "kto", {"dpo": 0.5, "ipo": 0.5, "robust_dpo": 0.5, "kto": 0.80}),
               _output(1, "skip", {"dpo": 0.5, "ipo": 0.5, "robust_dpo": 0.5, "kto": 0.70})]
    s = summarise_set((Regime("r", n_thumb_prompts=10, answers_per_prompt=1),), outputs, Budget(seeds=(0, 1)))
    r = s["regimes"][0]
    assert r["planner_choice_by_seed"] == ["kto", "skip"]
    assert r["planner_accuracy"] == pytest.approx((0.80 + 0.5) / 2)
    assert r["planner_regret"] == pytest.approx(0.75 - 0.65)
    assert s["summary"]["fixed_arm_regret"]["dpo"]["mean"] == pytest.approx(0.25)
