"""Checks that alignment did not cost something else: drift from the reference, longer answers,
and general language ability (perplexity on a fixed text shipped with alignloop).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from alignloop.evaluation.bootstrap import Interval, interval_or_point

CAPABILITY_TEXT = Path(__file__).with_name("capability_text.txt")
# Neighbouring tokens of a text are not independent: the perplexity interval resamples blocks of them.
PPL_BLOCK_TOKENS = 16


def capability_text(path: Path | None = None) -> str:
    """The fixed text the perplexity guard reads (the shipped one unless a path is configured)."""
    return (path or CAPABILITY_TEXT).read_text(encoding="utf-8")


def ppl_rise(reference: float, candidate: float) -> float:
    """Perplexity rise as a fraction of the reference's (0.05 = 5 % worse; negative = better)."""
    return candidate / reference - 1.0


def ppl_rise_interval(reference_logps: Sequence[float], candidate_logps: Sequence[float], *, n_samples: int = 2000,
                      seed: int = 0) -> Interval:
    """The perplexity rise candidate/reference − 1 on one text, with a 95% interval from resampling blocks of
    PPL_BLOCK_TOKENS consecutive tokens (NaN bounds when the text has too few blocks)."""
    diffs = [r - c for r, c in zip(reference_logps, candidate_logps, strict=True)]  # candidate's extra nats
    blocks = [str(i // PPL_BLOCK_TOKENS) for i in range(len(diffs))]
    return interval_or_point(diffs, blocks, n_samples=n_samples, seed=seed).mapped(lambda x: math.exp(x) - 1.0)


def kl_estimate(logp_candidate: list[float], logp_reference: list[float]) -> float:
    """Monte-Carlo KL(candidate || reference) in nats per answer, from answers sampled from the
    candidate: the mean of log p_candidate(y) - log p_reference(y). Unbiased; a single estimate can
    come out slightly negative when the two are close."""
    if not logp_candidate:
        raise ValueError("no sampled answers to estimate KL from")
    diffs = [c - r for c, r in zip(logp_candidate, logp_reference, strict=True)]
    return sum(diffs) / len(diffs)


def length_ratio(candidate_mean_tokens: float, reference_mean_tokens: float) -> float:
    """Mean candidate answer length over the reference's, in tokens (1.0 = no drift)."""
    return candidate_mean_tokens / max(reference_mean_tokens, 1e-9)
