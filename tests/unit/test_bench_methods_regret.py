"""The methods benchmark's arithmetic: ties from differences paired over seeds, and regret over regimes."""

from __future__ import annotations

import math
import statistics

import pytest
from scipy import stats

from alignloop.benchmarks.regret import compare_arms, difference_half_width, mean_interval, summarise_regret

ARMS = ("dpo", "ipo", "kto")


def _old_rule_ties(by_seed: dict[str, list[float]], arm: str) -> bool:
    """The rule this replaces: a tie within max(2 points, the best's spread, the arm's own spread)."""
    mean = {a: statistics.fmean(v) for a, v in by_seed.items()}
    best = max(mean, key=mean.get)
    return mean[best] - mean[arm] <= max(0.02, statistics.stdev(by_seed[best]), statistics.stdev(by_seed[arm]))


def test_an_arm_behind_the_best_on_every_seed_is_behind_however_much_the_seeds_vary():
    # Seeds differ a lot (hard and easy held-out sets), but ipo trails dpo by 4 points on every one.
    best = [0.90, 0.70, 0.80, 0.60]
    by_seed = {"dpo": best, "ipo": [b - 0.04 + e for b, e in zip(best, (0.004, -0.004, 0.002, -0.002), strict=True)],
               "kto": [b - 0.01 + e for b, e in zip(best, (-0.003, 0.003, 0.0, 0.0), strict=True)]}
    assert _old_rule_ties(by_seed, "ipo")          # the old rule let the seeds' spread hide the gap
    c = compare_arms(by_seed)
    assert c["best"] == "dpo"
    assert c["tied_or_best"]["ipo"] is False
    diff = c["difference_from_best"]["ipo"]
    assert diff["mean"] == pytest.approx(0.04) and diff["low"] > 0      # the interval of the difference excludes 0


def test_a_steady_and_an_erratic_arm_with_the_same_gap_get_the_same_verdict():
    by_seed = {"dpo": [0.80, 0.81, 0.80, 0.81, 0.80],
               "ipo": [0.77, 0.78, 0.77, 0.78, 0.77],                 # 3 points behind, steady
               "kto": [0.87, 0.67, 0.85, 0.69, 0.77]}                 # 3 points behind on average, erratic
    assert _old_rule_ties(by_seed, "kto") and not _old_rule_ties(by_seed, "ipo")
    c = compare_arms(by_seed)
    assert c["tied_or_best"]["ipo"] == c["tied_or_best"]["kto"]
    assert c["difference_from_best"]["ipo"]["high"] - c["difference_from_best"]["ipo"]["mean"] == \
        pytest.approx(c["difference_from_best"]["kto"]["high"] - c["difference_from_best"]["kto"]["mean"])


def test_with_two_arms_the_interval_is_the_paired_t_interval_of_their_differences():
    a, b = [0.80, 0.80, 0.80, 0.80], [0.78, 0.74, 0.78, 0.74]
    d = [x - y for x, y in zip(a, b, strict=True)]
    paired = stats.t.ppf(0.975, 3) * statistics.stdev(d) / math.sqrt(4)
    assert difference_half_width({"a": a, "b": b}) == pytest.approx(paired)
    assert compare_arms({"a": a, "b": b})["tied_or_best"]["b"] is bool(statistics.fmean(d) <= paired) is False
    closer = [y + 0.01 for y in b]
    assert compare_arms({"a": a, "b": closer})["tied_or_best"]["b"] is True


def test_an_arm_that_is_another_seed_for_seed_does_not_shrink_the_noise():
    by_seed = {"dpo": [0.80, 0.75, 0.82], "kto": [0.70, 0.76, 0.74]}
    with_copy = {**by_seed, "robust_dpo": list(by_seed["dpo"])}
    assert difference_half_width(with_copy) == pytest.approx(difference_half_width(by_seed))


def test_one_seed_gives_no_interval_and_only_the_best_is_tied_or_best():
    c = compare_arms({"dpo": [0.8], "ipo": [0.79]})
    assert c["half_width"] is None and c["difference_from_best"]["ipo"]["low"] is None
    assert c["tied_or_best"] == {"dpo": True, "ipo": False} and c["separated"] is False


def test_the_planners_accuracy_is_the_arm_it_chose_on_each_seed():
    by_seed = {"dpo": [0.80, 0.70], "kto": [0.60, 0.92]}
    c = compare_arms(by_seed, planner_by_seed=[0.80, 0.92])      # dpo on seed 0, kto on seed 1
    assert c["best"] == "kto" and c["planner_mean"] == pytest.approx(0.86)
    assert c["planner_regret"] == pytest.approx(0.76 - 0.86)     # choosing per seed can beat every fixed arm


def _regime(regret: dict[str, float], planner: float, separated: bool = True, tied: float = 0.01) -> dict:
    return {"regret": regret, "planner_regret": planner, "separated": separated,
            "tied_or_best": {a: r <= tied for a, r in regret.items()}, "planner_tied_or_best": planner <= tied}


def test_regret_over_regimes_is_paired_regime_by_regime():
    # ipo's regret swings from 0 to 20 points; the planner is 1 point better than it in every regime.
    compared = [_regime({"dpo": 0.00, "ipo": 0.10, "kto": 0.05}, 0.09),
                _regime({"dpo": 0.02, "ipo": 0.01, "kto": 0.00}, 0.00, separated=False),
                _regime({"dpo": 0.00, "ipo": 0.21, "kto": 0.30}, 0.20)]
    s = summarise_regret(compared, ARMS)
    assert s["planner_regret"]["mean"] == pytest.approx((0.09 + 0.00 + 0.20) / 3)
    half = stats.t.ppf(0.975, 2) * statistics.stdev([0.09, 0.0, 0.20]) / math.sqrt(3)
    assert s["planner_regret"]["high"] == pytest.approx(s["planner_regret"]["mean"] + half)
    vs_ipo = s["planner_minus_fixed_arm"]["ipo"]
    assert vs_ipo["mean"] == pytest.approx(-0.01) and vs_ipo["high"] == pytest.approx(-0.01)
    # unpaired, the two intervals would overlap: the pairing is what shows the planner ahead
    assert s["fixed_arm_regret"]["ipo"]["low"] < s["planner_regret"]["high"]
    assert s["planner_minus_fixed_arm"]["dpo"]["mean"] == pytest.approx((0.09 - 0.0 + 0.0 - 0.02 + 0.20) / 3)
    assert (s["n_separated"], s["planner_tied_or_best"], s["planner_tied_or_best_separated"]) == (2, 1, 0)
    assert s["fixed_arm_tied_or_best_separated"] == {"dpo": 2, "ipo": 0, "kto": 0}


def test_a_mean_of_one_value_has_no_interval():
    assert mean_interval([0.3]) == {"mean": 0.3, "low": None, "high": None, "n": 1}
