"""Paired bootstrap intervals over held-out pairs, with the prompt as the resampling unit.

Pairs that share a prompt are not independent (the same conversation, often the same answers), so
a whole prompt's pairs are drawn together. Deltas are bootstrapped on per-pair differences, which
keeps the pairing: both models are scored on exactly the same resampled pairs.

A percentile interval over a handful of clusters is not an interval: with one prompt every draw is
the same and the interval has zero width. Fewer than MIN_CLUSTERS clusters are refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_CLUSTERS = 10


class TooFewClusters(ValueError):
    """Too few independent units (prompts) to resample: no interval, so the quantity is unmeasured."""


@dataclass(frozen=True)
class Interval:
    """A statistic and its percentile bootstrap interval (bounds NaN when too few clusters to draw)."""

    value: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    @property
    def measured(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def mapped(self, f) -> Interval:
        """The interval of f(statistic) for a monotone increasing f."""
        return Interval(f(self.value), f(self.low), f(self.high))


def cluster_bootstrap(values: Sequence[float], clusters: Sequence[str], *, n_samples: int = 2000,
                      confidence: float = 0.95, seed: int = 0, weights: Sequence[float] | None = None,
                      min_clusters: int = MIN_CLUSTERS) -> Interval:
    """Mean of `values` (weighted by `weights` if given) with a percentile interval from resampling whole
    clusters with replacement.

    Each bootstrap draw picks as many clusters as there are, with replacement, and takes the (weighted)
    mean over all values of the drawn clusters (a cluster drawn twice counts twice). Raises TooFewClusters
    below `min_clusters` clusters.
    """
    if len(values) != len(clusters):
        raise ValueError(f"{len(values)} values but {len(clusters)} cluster labels")
    if not values:
        raise ValueError("no values to bootstrap")
    v = np.asarray(values, dtype=np.float64)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64)
    _, index = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    k = int(index.max()) + 1
    if k < min_clusters:
        raise TooFewClusters(f"{k} prompts are too few for a 95% interval (at least {min_clusters})")
    sums = np.bincount(index, weights=v * w, minlength=k)
    counts = np.bincount(index, weights=w, minlength=k)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(k, np.full(k, 1.0 / k), size=n_samples).astype(np.float64)
    means = (draws @ sums) / np.maximum(draws @ counts, 1e-300)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(float((v * w).sum() / w.sum()), float(low), float(high))


def interval_or_point(values: Sequence[float], clusters: Sequence[str], **kw) -> Interval:
    """cluster_bootstrap, or the bare statistic with NaN bounds when there are too few clusters."""
    try:
        return cluster_bootstrap(values, clusters, **kw)
    except TooFewClusters:
        v = np.asarray(values, dtype=np.float64)
        w = np.ones_like(v) if kw.get("weights") is None else np.asarray(kw["weights"], dtype=np.float64)
        return Interval(float((v * w).sum() / w.sum()), math.nan, math.nan)


def paired_delta(candidate: Sequence[float], baseline: Sequence[float], clusters: Sequence[str],
                 **kw) -> Interval:
    """candidate - baseline on the same pairs, with a paired cluster-bootstrap interval (NaN bounds when
    there are too few clusters)."""
    if len(candidate) != len(baseline):
        raise ValueError("paired values must be of equal length")
    diffs = [c - b for c, b in zip(candidate, baseline, strict=True)]
    return interval_or_point(diffs, clusters, **kw)
