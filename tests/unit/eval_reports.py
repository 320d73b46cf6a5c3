"""Evaluation reports built by hand in the shape pipeline/evaluation writes (eval_report.json), so the
gate, the registry and the review page are tested on exact numbers."""

from __future__ import annotations

from typing import Any

Triple = tuple[float, float, float]


def interval(prefix: str, value: float, low: float, high: float) -> dict[str, float]:
    return {prefix: value, f"{prefix}_ci_low": low, f"{prefix}_ci_high": high}


def _triple(x: float | Triple, half: float) -> Triple:
    """A bare number stands for an interval of ±half around it."""
    return tuple(x) if isinstance(x, tuple) else (x, x - half, x + half)


def eval_report(*, delta: Triple = (0.06, 0.02, 0.10), reference: float = 0.60,
                champion_version: int | None = None, champion_delta: Triple | None = None,
                set_hash: str = "set-a", champion_set_hash: str | None = None,
                kl: float | Triple | None = 1.5, ppl_rise: float | Triple | None = 0.02,
                length_ratio: float | Triple | None = 1.1, degenerate_delta: float | Triple | None = 0.0,
                judge_usable: bool | None = True, win_rate: float | Triple = 0.62, prompts: int = 40,
                generation_prompts: int = 32, samples: int = 3,
                sampled_win_rate: float | Triple | None = None) -> dict[str, Any]:
    """A report whose candidate gains `delta` (value, ci_low, ci_high) over the reference, measured on
    `prompts` held-out prompts, with `generation_prompts` prompts answered (and judged) by both models."""
    candidate = reference + delta[0]
    m: dict[str, float] = {
        **interval("eval_pref_accuracy_reference", reference, reference - 0.05, reference + 0.05),
        **interval("eval_pref_accuracy_candidate", candidate, candidate - 0.05, candidate + 0.05),
        **interval("eval_pref_accuracy_delta", *delta),
        "eval_reward_accuracy": 0.7, "eval_reward_margin": 0.31, "eval_pairs": 3.0 * prompts,
        "eval_prompts": float(prompts), "eval_seconds": 9.5,
    }
    if champion_version is not None and champion_delta is not None:
        m["eval_pref_accuracy_champion"] = candidate - champion_delta[0]
        m.update(interval("eval_pref_accuracy_champion_delta", *champion_delta))
    if generation_prompts:
        m["eval_generation_prompts"] = float(generation_prompts)
    for key, value, half in (("eval_kl_reference", kl, 0.3), ("eval_ppl_rise", ppl_rise, 0.02),
                             ("eval_length_ratio", length_ratio, 0.1),
                             ("eval_degenerate_rate_delta", degenerate_delta, 0.05)):
        if value is not None:
            m.update(interval(key, *_triple(value, half)))
    if kl is not None:
        m["eval_kl_prompts"] = float(generation_prompts)
    judge = None
    if judge_usable is not None:
        m["eval_judge_accuracy"] = 0.81 if judge_usable else 0.52
        judge = {"kind": "reward_model", "usable": judge_usable, "accuracy": m["eval_judge_accuracy"],
                 "n_accuracy_pairs": 120, "fitted_on": "cross-fitted on held-out prompts (2 folds)"}
        if judge_usable:
            m.update(interval("eval_judge_win_rate", *_triple(win_rate, 0.1)))
            m["eval_judge_prompts"] = float(generation_prompts)
        if judge_usable and sampled_win_rate is not None:  # two sampled answers a prompt, as kl_samples: 2 gives
            m.update(interval("eval_judge_sampled_win_rate", *_triple(sampled_win_rate, 0.1)))
            m["eval_judge_sampled_prompts"] = float(generation_prompts)
            judge.update(sampled_per_prompt=2, sampled_prompts=generation_prompts)
    against = "champion" if champion_version is not None else "reference"
    return {
        "eval_set_hash": set_hash,
        "metrics": m,
        "champion_version": None if champion_version is None else str(champion_version),
        "champion_eval_set_hash": (champion_set_hash or set_hash) if champion_version is not None else None,
        "judge": judge,
        "samples": [{"prompt": f"Question number {i}?",
                     "conversation": [{"role": "user", "content": "Hi, I have a question."},
                                      {"role": "assistant", "content": "Hello there, how can I help?"},
                                      {"role": "user", "content": f"Question number {i}?"}],
                     "candidate": f"Kind answer {i}, happy to help.", "candidate_degenerate": None,
                     against: f"Curt answer {i}.", f"{against}_degenerate": None,
                     f"judged_vs_{against}": 1.0} for i in range(samples)],
        "samples_against": against,
        "n_pairs": 3 * prompts,
    }
