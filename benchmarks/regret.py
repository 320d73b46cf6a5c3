"""The arithmetic behind `alignloop bench methods`: differences between arms paired over seeds, ties, regret.

Within a regime every arm trains on the same seeds (per seed: the same rows, held-out pairs and
starting weights), so arms are compared seed by seed. A regime's noise is one figure for all of its
arms: the spread of accuracy left once each arm's mean and each seed's mean are taken out (arms x
seeds, a two-way layout), pooled over the arms that differ. The 95 % interval of the difference
between two arms' means is that difference ± t · σ · √(2 / seeds). An arm is tied with the best when
its gap is inside that half-width; the half-width is the same for every arm of a regime, so an
erratic arm earns no wider tie than a steady one.

Regret of an arm in a regime: the best arm's mean accuracy minus its own (the best of the fixed arms,
chosen on the same means). Over regimes, the planner's regret is compared with each fixed arm's by
their difference regime by regime (a paired t interval over regimes).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from scipy import stats

CONFIDENCE = 0.95


def t_quantile(df: int) -> float:
    """The two-sided CONFIDENCE quantile of Student's t with df degrees of freedom."""
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, df))


def mean_interval(values: Sequence[float]) -> dict[str, Any]:
    """Mean and its t interval; low/high are None below two values."""
    n = len(values)
    mean = statistics.fmean(values) if n else float("nan")
    if n < 2:
        return {"mean": mean, "low": None, "high": None, "n": n}
    half = t_quantile(n - 1) * statistics.stdev(values) / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}


def pooled_noise(by_seed: Mapping[str, Sequence[float]]) -> tuple[float, int]:
    """(σ, degrees of freedom) of the arm-by-seed residuals, over the arms whose per-seed accuracies differ.

    Two arms that are the same arm in effect (robust DPO with no smoothing is DPO, seed for seed) are
    counted once, so a copy does not shrink the noise."""
    distinct = list({tuple(v): list(v) for v in by_seed.values()}.values())
    arms, seeds = len(distinct), len(distinct[0])
    df = (arms - 1) * (seeds - 1)
    if df <= 0:
        return 0.0, 0
    arm_mean = [statistics.fmean(v) for v in distinct]
    seed_mean = [statistics.fmean(v[s] for v in distinct) for s in range(seeds)]
    grand = statistics.fmean(arm_mean)
    ss = sum((v[s] - arm_mean[a] - seed_mean[s] + grand) ** 2 for a, v in enumerate(distinct) for s in range(seeds))
    return math.sqrt(ss / df), df


def difference_half_width(by_seed: Mapping[str, Sequence[float]]) -> float | None:
    """Half-width of the 95 % interval of the difference between two arms' means in this regime.

    None when there is no interval (one seed); 0.0 when every arm gave the same accuracies."""
    sigma, df = pooled_noise(by_seed)
    seeds = len(next(iter(by_seed.values())))
    if df == 0:
        return None if seeds < 2 else 0.0
    return t_quantile(df) * sigma * math.sqrt(2.0 / seeds)


def compare_arms(by_seed: Mapping[str, Sequence[float]], planner_by_seed: Sequence[float] | None = None
                 ) -> dict[str, Any]:
    """One regime's comparison: each arm's mean, its difference from the best with the interval, ties,
    whether the arms differ by more than their noise, and the planner's place among them.

    by_seed: arm -> accuracy per seed (same seeds, same order for every arm); planner_by_seed: the
    accuracy of the arm the planner chose for each seed's data."""
    mean = {arm: statistics.fmean(v) for arm, v in by_seed.items()}
    best = max(mean, key=mean.get)
    half = difference_half_width(by_seed)
    margin = half if half is not None else 0.0
    gap = {arm: mean[best] - m for arm, m in mean.items()}
    out: dict[str, Any] = {
        "mean": mean,
        "best": best,
        "half_width": half,
        # best minus arm, with its interval: the interval excludes 0 when the arm is really behind
        "difference_from_best": {arm: {"mean": g, "low": None if half is None else g - half,
                                       "high": None if half is None else g + half} for arm, g in gap.items()},
        "tied_or_best": {arm: g <= margin for arm, g in gap.items()},
        "separated": half is not None and max(gap.values()) > half,
        "regret": gap,
    }
    if planner_by_seed is not None:
        planner = statistics.fmean(planner_by_seed)
        out["planner_mean"] = planner
        out["planner_regret"] = mean[best] - planner
        out["planner_tied_or_best"] = mean[best] - planner <= margin
    return out


def summarise_regret(compared: Sequence[Mapping[str, Any]], arms: Sequence[str]) -> dict[str, Any]:
    """Over regimes: the planner's mean regret and each fixed arm's, each with its interval; the
    planner-minus-arm difference paired by regime; and how often the planner was tied or best, in all
    regimes and in those where the arms differ by more than their noise."""
    planner = [c["planner_regret"] for c in compared]
    separated = [c for c in compared if c["separated"]]
    return {
        "n_regimes": len(compared),
        "planner_regret": mean_interval(planner),
        "fixed_arm_regret": {arm: mean_interval([c["regret"][arm] for c in compared]) for arm in arms},
        # negative: the planner's regret is lower; an interval wholly below 0 is a lower regret beyond the noise
        "planner_minus_fixed_arm": {arm: mean_interval([c["planner_regret"] - c["regret"][arm] for c in compared])
                                    for arm in arms},
        "planner_tied_or_best": sum(c["planner_tied_or_best"] for c in compared),
        "fixed_arm_tied_or_best": {arm: sum(c["tied_or_best"][arm] for c in compared) for arm in arms},
        "n_separated": len(separated),
        "planner_tied_or_best_separated": sum(c["planner_tied_or_best"] for c in separated),
        "fixed_arm_tied_or_best_separated": {arm: sum(c["tied_or_best"][arm] for c in separated) for arm in arms},
    }
