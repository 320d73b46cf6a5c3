"""Bootstrap intervals: prompts are the resampling unit, and deltas keep the pairing."""

from __future__ import annotations

import random

import pytest

from alignloop.evaluation.bootstrap import MIN_CLUSTERS, TooFewClusters, cluster_bootstrap, paired_delta


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
    values = [0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0] * 2
    iv = cluster_bootstrap(values, [str(i) for i in range(16)])
    assert iv.value == pytest.approx(5 / 8) and iv.low < iv.value < iv.high
    const = cluster_bootstrap([0.75] * 12, list("abcdefghijkl"))
    assert (const.low, const.value, const.high) == pytest.approx((0.75, 0.75, 0.75))


def test_same_seed_same_interval_and_bad_input_is_refused():
    values, clusters = [float(i % 3 == 0) for i in range(30)], [str(i // 2) for i in range(30)]
    assert cluster_bootstrap(values, clusters, seed=7) == cluster_bootstrap(values, clusters, seed=7)
    with pytest.raises(ValueError, match="cluster labels"):
        cluster_bootstrap([1.0, 0.0], ["a"])
    with pytest.raises(ValueError, match="no values"):
        cluster_bootstrap([], [])


def test_too_few_prompts_get_no_interval_rather_than_a_zero_width_one():
    """One prompt's pairs always resample to themselves: [x, x] would pass for certainty."""
    with pytest.raises(TooFewClusters, match="1 prompts are too few"):
        cluster_bootstrap([1.0, 0.0, 1.0], ["only", "only", "only"])
    with pytest.raises(TooFewClusters):
        cluster_bootstrap([1.0] * (MIN_CLUSTERS - 1), [str(i) for i in range(MIN_CLUSTERS - 1)])
    delta = paired_delta([1.0, 1.0], [0.0, 0.0], ["a", "b"])
    assert delta.value == 1.0 and not delta.measured  # the statistic, without bounds


def test_weights_give_a_ratio_of_sums_and_its_interval():
    lengths_c, lengths_r = [12, 30, 8, 20] * 5, [10, 20, 10, 10] * 5
    ratio = cluster_bootstrap([c / r for c, r in zip(lengths_c, lengths_r, strict=True)], [str(i) for i in range(20)],
                              weights=lengths_r)
    assert ratio.value == pytest.approx(sum(lengths_c) / sum(lengths_r))
    assert ratio.low < ratio.value < ratio.high
