"""Label noise from the votes themselves: every signal the feedback carries, each with its evidence.

Each signal turns a measured disagreement into a flip rate p (the chance that one label is the wrong
way round), under independent flips:
- repeated judgements of one item (a pair judged again, in either order; a thumb given twice):
  two votes disagree with probability d = 2p(1-p), so p = (1 - sqrt(1 - 2d)) / 2;
- agreement between different people on a shared item: the same, one vote per person;
- intransitive triads: three answers to one prompt, all three pairs compared; a true order plus
  flips gives a cycle with probability c = p(1-p), so p = (1 - sqrt(1 - 4c)) / 2.
Every estimate carries a 95 % bootstrap interval (resampling the items it rests on) and that count.
When no item disagrees at all, every resample gives 0 and the bootstrap would claim certainty; the
upper end is then the exact one-sided 97.5 % binomial bound on the share of disagreeing items.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_ROUNDS = 400
# Fewest items a direct signal needs before the planner may act on it.
MIN_SUPPORT = 30


@dataclass(frozen=True)
class NoiseEstimate:
    """One signal's estimate of the label flip rate, with its 95 % interval and what it rests on."""

    signal: str                  # repeated_pairs | annotator_pairs | intransitive_triads | repeated_thumbs | ...
    flip_rate: float | None
    low: float | None
    high: float | None
    support: int                 # how many items (or triads, or pairs for the model) it rests on
    unit: str                    # what `support` counts, in words
    enough: bool                 # support >= the signal's minimum, so a plan may rest on it
    detail: str = ""

    def describe(self) -> str:
        if self.flip_rate is None:
            return f"{self.signal}: no estimate ({self.support} {self.unit}{'; ' + self.detail if self.detail else ''})"
        return (f"{self.signal}: {100 * self.flip_rate:.1f}% (95% interval {100 * self.low:.1f}–{100 * self.high:.1f}%, "
                f"from {self.support} {self.unit})")


def flip_from_disagreement(d: float) -> float:
    """p with 2p(1-p) = d (two independent votes on one item disagree), for d in [0, 0.5]."""
    return (1.0 - math.sqrt(1.0 - 2.0 * min(max(d, 0.0), 0.5))) / 2.0


def flip_from_cycles(c: float) -> float:
    """p with p(1-p) = c (a fully compared triad is cyclic), for c in [0, 0.25]."""
    return (1.0 - math.sqrt(1.0 - 4.0 * min(max(c, 0.0), 0.25))) / 2.0


def bootstrap_interval(statistic: Callable[[np.ndarray], float], groups: np.ndarray,
                       rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> tuple[float, float]:
    """2.5 and 97.5 percentiles of `statistic` over resamples of the rows of `groups`."""
    rng = np.random.default_rng(seed)
    n = len(groups)
    values = [statistic(groups[rng.integers(0, n, n)]) for _ in range(rounds)]
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def zero_count_upper(n_items: int) -> float:
    """Upper 97.5 % bound on a share when 0 of n_items show it (Clopper-Pearson: 1 - 0.025^(1/n))."""
    return 1.0 - 0.025 ** (1.0 / n_items) if n_items else 1.0


def _vote_flip(items: np.ndarray) -> float:
    """Flip rate from items' (n votes, k positive): share of disagreeing vote pairs -> p."""
    n, k = items[:, 0].astype(float), items[:, 1].astype(float)
    pairs = (n * (n - 1) / 2).sum()
    return flip_from_disagreement(float((k * (n - k)).sum() / pairs)) if pairs else 0.0


def from_repeated_items(signal: str, items: np.ndarray, unit: str, min_support: int = MIN_SUPPORT) -> NoiseEstimate:
    """Noise from items judged two or more times; `items` holds one (n, k) row per such item."""
    items = np.asarray(items, dtype=float).reshape(-1, 2)
    if len(items) == 0:
        return NoiseEstimate(signal, None, None, None, 0, unit, False, "nothing was judged twice")
    contradictory = int(((items[:, 1] > 0) & (items[:, 1] < items[:, 0])).sum())
    p = _vote_flip(items)
    lo, hi = bootstrap_interval(_vote_flip, items)
    if contradictory == 0:
        # No item got both verdicts: a vote pair disagrees in at most this share of items.
        hi = flip_from_disagreement(zero_count_upper(len(items)))
    return NoiseEstimate(signal, p, min(lo, p), max(hi, p), len(items), unit, len(items) >= min_support,
                         f"{contradictory} of them got both verdicts")


def _cycle_flip(prompts: np.ndarray) -> float:
    triads = prompts[:, 0].sum()
    return flip_from_cycles(float(prompts[:, 1].sum() / triads)) if triads else 0.0


def from_triads(prompts: np.ndarray, min_support: int = MIN_SUPPORT) -> NoiseEstimate:
    """Noise from intransitive triads; `prompts` holds one (triads, cyclic) row per prompt.

    Resampled by prompt: triads of one prompt share pairs, so they are not independent."""
    prompts = np.asarray(prompts, dtype=float).reshape(-1, 2)
    triads = int(prompts[:, 0].sum()) if len(prompts) else 0
    unit = "fully compared triads of answers"
    if triads == 0:
        return NoiseEstimate("intransitive_triads", None, None, None, 0, unit, False,
                             "no prompt has three answers compared pairwise")
    p = _cycle_flip(prompts)
    lo, hi = bootstrap_interval(_cycle_flip, prompts)
    cyclic = int(prompts[:, 1].sum())
    if cyclic == 0:
        # The share of cyclic triads is at most the share of prompts with a cycle, bounded from 0 of them.
        hi = flip_from_cycles(zero_count_upper(len(prompts)))
    return NoiseEstimate("intransitive_triads", p, min(lo, p), max(hi, p), triads, unit, triads >= min_support,
                         f"{cyclic} cyclic, over {len(prompts)} prompts")
