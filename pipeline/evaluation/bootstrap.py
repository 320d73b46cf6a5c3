"""Paired bootstrap intervals over held-out pairs, with the prompt as the resampling unit.

Pairs that share a prompt are not independent (the same conversation, often the same answers), so
a whole prompt's pairs are drawn together. Deltas are bootstrapped on per-pair differences, which
keeps the pairing: both models are scored on exactly the same resampled pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A statistic and its percentile bootstrap interval."""

    value: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def cluster_bootstrap(values: Sequence[float], clusters: Sequence[str], *, n_samples: int = 2000,
                      confidence: float = 0.95, seed: int = 0) -> Interval:
    """Mean of `values` with a percentile interval from resampling whole clusters with replacement.

    Each bootstrap draw picks as many clusters as there are, with replacement, and takes the mean
    over all pairs of the drawn clusters (a cluster drawn twice counts twice).
    """
    if len(values) != len(clusters):
        raise ValueError(f"{len(values)} values but {len(clusters)} cluster labels")
    if not values:
        raise ValueError("no values to bootstrap")
    v = np.asarray(values, dtype=np.float64)
    _, index = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    k = int(index.max()) + 1
    sums = np.bincount(index, weights=v, minlength=k)
    counts = np.bincount(index, minlength=k).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(k, np.full(k, 1.0 / k), size=n_samples).astype(np.float64)
    means = (draws @ sums) / (draws @ counts)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(float(v.mean()), float(low), float(high))


def paired_delta(candidate: Sequence[float], baseline: Sequence[float], clusters: Sequence[str],
                 **kw) -> Interval:
    """candidate - baseline on the same pairs, with a paired cluster-bootstrap interval."""
    if len(candidate) != len(baseline):
        raise ValueError("paired values must be of equal length")
    diffs = [c - b for c, b in zip(candidate, baseline, strict=True)]
    return cluster_bootstrap(diffs, clusters, **kw)
