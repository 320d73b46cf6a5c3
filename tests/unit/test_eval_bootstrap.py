"""Bootstrap intervals: prompts are the resampling unit, and deltas keep the pairing."""

from __future__ import annotations

import random

import pytest

from alignloop.evaluation.bootstrap import cluster_bootstrap, paired_delta


def test_pairs_sharing_a_prompt_are_resampled_together():
    """Ten copies of each prompt's pair carry no more information than one: same interval."""
    rng = random.Random(1)
    per_prompt = [float(rng.random() < 0.6) for _ in range(40)]
    once = cluster_bootstrap(per_prompt, [f"p{i}" for i in range(40)], seed=3)
    repeated = cluster_bootstrap([v for v in per_prompt for _ in range(10)],
                                 [f"p{i}" for i in range(40) for _ in range(10)], seed=3)
    assert (repeated.value, repeated.low, repeated.high) == pytest.approx((once.value, once.low, once.high))
    as_if_independent = cluster_bootstrap([v for v in per_prompt for _ in range(10)], list(range(400)), seed=3)
    assert as_if_independent.high - as_if_independent.low < 0.5 * (once.high - once.low)


def test_paired_delta_sees_a_consistent_gain_that_separate_intervals_would_not():
    rng = random.Random(0)
    baseline = [float(rng.random() < 0.6) for _ in range(200)]
    losers = [i for i, v in enumerate(baseline) if v == 0.0][:15]
    candidate = [1.0 if i in losers else v for i, v in enumerate(baseline)]  # 15 pairs fixed, none broken
    clusters = [f"p{i}" for i in range(200)]
    delta = paired_delta(candidate, baseline, clusters)
    assert delta.value == pytest.approx(15 / 200)
    assert delta.low > 0 and delta.excludes_zero()
    cand, base = cluster_bootstrap(candidate, clusters), cluster_bootstrap(baseline, clusters)
    assert cand.low < base.high  # unpaired, the two intervals overlap


def test_interval_brackets_the_mean_and_is_degenerate_for_a_constant():
    values = [0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    iv = cluster_bootstrap(values, [str(i) for i in range(8)])
    assert iv.value == pytest.approx(5 / 8) and iv.low < iv.value < iv.high
    const = cluster_bootstrap([0.75] * 5, list("abcde"))
    assert (const.low, const.value, const.high) == pytest.approx((0.75, 0.75, 0.75))


def test_same_seed_same_interval_and_bad_input_is_refused():
    values, clusters = [float(i % 3 == 0) for i in range(30)], [str(i // 2) for i in range(30)]
    assert cluster_bootstrap(values, clusters, seed=7) == cluster_bootstrap(values, clusters, seed=7)
    with pytest.raises(ValueError, match="cluster labels"):
        cluster_bootstrap([1.0, 0.0], ["a"])
    with pytest.raises(ValueError, match="no values"):
        cluster_bootstrap([], [])
