"""Evaluation reports built by hand in the shape pipeline/evaluation writes (eval_report.json), so the
gate, the registry and the review page are tested on exact numbers."""

from __future__ import annotations

from typing import Any


def interval(prefix: str, value: float, low: float, high: float) -> dict[str, float]:
    return {prefix: value, f"{prefix}_ci_low": low, f"{prefix}_ci_high": high}


def eval_report(*, delta: tuple[float, float, float] = (0.06, 0.02, 0.10), reference: float = 0.60,
                champion_version: int | None = None, champion_delta: tuple[float, float, float] | None = None,
                set_hash: str = "set-a", kl: float | None = 1.5, ppl_rise: float | None = 0.02,
                length_ratio: float | None = 1.1, judge_usable: bool | None = True, win_rate: float = 0.62,
                samples: int = 3) -> dict[str, Any]:
    """A report whose candidate gains `delta` (value, ci_low, ci_high) over the reference."""
    candidate = reference + delta[0]
    m: dict[str, float] = {
        **interval("eval_pref_accuracy_reference", reference, reference - 0.05, reference + 0.05),
        **interval("eval_pref_accuracy_candidate", candidate, candidate - 0.05, candidate + 0.05),
        **interval("eval_pref_accuracy_delta", *delta),
        "eval_reward_accuracy": 0.7, "eval_reward_margin": 0.31, "eval_pairs": 120.0, "eval_seconds": 9.5,
    }
    if champion_version is not None and champion_delta is not None:
        m["eval_pref_accuracy_champion"] = candidate - champion_delta[0]
        m.update(interval("eval_pref_accuracy_champion_delta", *champion_delta))
    for key, value in (("eval_kl_reference", kl), ("eval_ppl_rise", ppl_rise), ("eval_length_ratio", length_ratio)):
        if value is not None:
            m[key] = value
    judge = None
    if judge_usable is not None:
        m["eval_judge_accuracy"] = 0.81 if judge_usable else 0.52
        judge = {"kind": "reward_model", "usable": judge_usable, "accuracy": m["eval_judge_accuracy"]}
        if judge_usable:
            m.update(interval("eval_judge_win_rate", win_rate, win_rate - 0.1, win_rate + 0.1))
    against = "champion" if champion_version is not None else "reference"
    return {
        "eval_set_hash": set_hash,
        "metrics": m,
        "champion_version": None if champion_version is None else str(champion_version),
        "judge": judge,
        "samples": [{"prompt": f"Question number {i}?", "candidate": f"Kind answer {i}, happy to help.",
                     against: f"Curt answer {i}."} for i in range(samples)],
        "samples_against": against,
        "n_pairs": 120,
    }
