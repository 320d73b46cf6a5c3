"""EvalReport: what an evaluation found, with intervals, in the shape MLflow, the gate and the review
page read. Metric keys are a contract: `EvalReport.metrics()` names them all.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignloop.evaluation.bootstrap import Interval
from alignloop.evaluation.judge import JudgeSummary


@dataclass(frozen=True)
class EvalReport:
    n_pairs: int
    n_prompts: int
    eval_set_hash: str
    eval_sample_share: float               # share of held-out prompts in the set (1.0 = all)
    truncated_pairs: int                   # pairs with a sequence cut to max_length (oldest prompt tokens)
    max_length: int
    pref_accuracy_reference: Interval
    pref_accuracy_candidate: Interval
    delta: Interval                        # candidate - reference, paired
    reward_accuracy: float
    reward_margin: float
    beta: float
    seconds: float
    reference_cached: bool                 # the reference's scores came from the on-disk cache
    champion_version: str | None = None
    champion_eval_set_hash: str | None = None  # the set the champion was scored on (in this same run)
    pref_accuracy_champion: Interval | None = None
    champion_delta: Interval | None = None  # candidate - champion, paired
    kl_reference: Interval | None = None    # nats per sampled answer
    kl_prompts: int = 0
    length_ratio: Interval | None = None    # candidate / reference answer tokens
    ppl_reference: float | None = None
    ppl_candidate: float | None = None
    ppl_rise_interval: Interval | None = None
    generation_prompts: int = 0             # held-out prompts every model answered
    max_new_tokens: int | None = None       # the generation limit an answer is cut off at (None: no answers)
    degenerate_rate: float | None = None    # share of the candidate's answers empty, repeating or cut off
    degenerate_rate_reference: float | None = None
    degenerate_delta: Interval | None = None  # candidate - reference share, paired by prompt
    refusal_rate: float | None = None
    refusal_rate_reference: float | None = None
    judge: JudgeSummary | None = None
    judge_prompts: int = 0
    win_rate: Interval | None = None        # candidate over champion (or reference), judged
    win_rate_against: str | None = None     # "champion" | "reference"
    win_rate_reference: Interval | None = None  # candidate over the reference, when the first is the champion
    # The same judge on sampled answers (temperature 1): the candidate's over the reference's, to the same
    # prompts, sampled_per_prompt draws each. Reported beside the greedy win rate; the gate reads the greedy one.
    sampled_win_rate: Interval | None = None
    sampled_prompts: int = 0
    sampled_per_prompt: int = 0
    reference_samples_cached: bool | None = None  # the reference's sampled answers came from the on-disk cache
    seconds_parts: dict[str, float] = field(default_factory=dict)  # scoring, generation, judge, guards
    precision: str = "float32"              # the scoring passes' number format (evaluation.precision resolved)
    samples: list[dict[str, Any]] = field(default_factory=list)
    per_pair: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def improvement(self) -> float:
        return self.delta.value

    @property
    def ppl_rise(self) -> float | None:
        if self.ppl_reference is None or self.ppl_candidate is None:
            return None
        return self.ppl_candidate / self.ppl_reference - 1.0

    def metrics(self) -> dict[str, float]:
        """The MLflow metrics of an evaluation; absent checks leave their keys out rather than log a fake,
        and an interval that could not be drawn (too few prompts) leaves out its bounds."""
        m: dict[str, float] = {}

        def interval(name: str, iv: Interval | None, bounds: bool = True) -> None:
            if iv is None:
                return
            m[name] = iv.value
            if bounds and iv.measured:
                m[f"{name}_ci_low"], m[f"{name}_ci_high"] = iv.low, iv.high

        interval("eval_pref_accuracy_reference", self.pref_accuracy_reference)
        interval("eval_pref_accuracy_candidate", self.pref_accuracy_candidate)
        interval("eval_pref_accuracy_delta", self.delta)
        interval("eval_pref_accuracy_champion", self.pref_accuracy_champion, bounds=False)
        interval("eval_pref_accuracy_champion_delta", self.champion_delta)
        m["eval_reward_accuracy"] = self.reward_accuracy
        m["eval_reward_margin"] = self.reward_margin
        interval("eval_kl_reference", self.kl_reference)
        interval("eval_length_ratio", self.length_ratio)
        interval("eval_degenerate_rate_delta", self.degenerate_delta)
        for name, value in (("eval_ppl_reference", self.ppl_reference), ("eval_ppl_candidate", self.ppl_candidate),
                            ("eval_degenerate_rate", self.degenerate_rate),
                            ("eval_degenerate_rate_reference", self.degenerate_rate_reference),
                            ("eval_refusal_rate", self.refusal_rate),
                            ("eval_refusal_rate_reference", self.refusal_rate_reference)):
            if value is not None:
                m[name] = value
        if self.ppl_rise is not None:
            interval("eval_ppl_rise", self.ppl_rise_interval or Interval(self.ppl_rise, math.nan, math.nan))
        if self.kl_reference is not None:
            m["eval_kl_prompts"] = float(self.kl_prompts)
        if self.generation_prompts:
            m["eval_generation_prompts"] = float(self.generation_prompts)
        if self.max_new_tokens is not None:
            m["eval_max_new_tokens"] = float(self.max_new_tokens)
        if self.judge is not None and self.judge.accuracy is not None:
            m["eval_judge_accuracy"] = self.judge.accuracy
            m["eval_judge_accuracy_pairs"] = float(self.judge.n_accuracy_pairs)
        if self.judge is not None and self.judge.usable:  # an unusable judge's win rate is not a metric
            interval("eval_judge_win_rate", self.win_rate)
            interval("eval_judge_win_rate_reference", self.win_rate_reference)
            m["eval_judge_prompts"] = float(self.judge_prompts)
            if self.sampled_win_rate is not None:
                interval("eval_judge_sampled_win_rate", self.sampled_win_rate)
                m["eval_judge_sampled_prompts"] = float(self.sampled_prompts)
        m["eval_pairs"] = float(self.n_pairs)
        m["eval_prompts"] = float(self.n_prompts)
        m["eval_truncated_pairs"] = float(self.truncated_pairs)
        m["eval_seconds"] = self.seconds
        for part, seconds in self.seconds_parts.items():
            m[f"eval_seconds_{part}"] = seconds
        return m

    def to_dict(self) -> dict[str, Any]:
        """eval_report.json: the set, the metrics, the judge, side-by-side samples, and the details."""
        def iv(x: Interval | None) -> dict[str, float | None] | None:
            if x is None:
                return None
            return {"value": x.value, "ci_low": x.low if x.measured else None, "ci_high": x.high if x.measured else None}

        other = "champion" if self.champion_version is not None else "reference"
        return {
            "eval_set_hash": self.eval_set_hash,
            "metrics": self.metrics(),
            "champion_version": self.champion_version,
            "champion_eval_set_hash": self.champion_eval_set_hash,
            "judge": None if self.judge is None else {
                **self.judge.to_dict(), "prompts": self.judge_prompts,
                "win_rate": iv(self.win_rate), "win_rate_against": self.win_rate_against,
                "win_rate_reference": iv(self.win_rate_reference),
                "sampled_win_rate": iv(self.sampled_win_rate), "sampled_against": "reference",
                "sampled_prompts": self.sampled_prompts, "sampled_per_prompt": self.sampled_per_prompt,
                "reference_samples_cached": self.reference_samples_cached},
            "generation": {"prompts": self.generation_prompts, "max_new_tokens": self.max_new_tokens,
                           "degenerate_rate": self.degenerate_rate,
                           "degenerate_rate_reference": self.degenerate_rate_reference,
                           "refusal_rate": self.refusal_rate, "refusal_rate_reference": self.refusal_rate_reference},
            "samples": self.samples,
            "samples_against": other,
            "n_pairs": self.n_pairs,
            "n_prompts": self.n_prompts,
            "eval_sample_share": self.eval_sample_share,
            "truncated_pairs": self.truncated_pairs,
            "max_length": self.max_length,
            "precision": self.precision,
            "reference_cached": self.reference_cached,
            "beta": self.beta,
            "improvement": self.improvement,
            "intervals": {"pref_accuracy_reference": iv(self.pref_accuracy_reference),
                          "pref_accuracy_candidate": iv(self.pref_accuracy_candidate),
                          "pref_accuracy_delta": iv(self.delta),
                          "pref_accuracy_champion": iv(self.pref_accuracy_champion),
                          "pref_accuracy_champion_delta": iv(self.champion_delta),
                          "kl_reference": iv(self.kl_reference), "length_ratio": iv(self.length_ratio),
                          "ppl_rise": iv(self.ppl_rise_interval), "degenerate_delta": iv(self.degenerate_delta)},
            "seconds": {"total": self.seconds, **self.seconds_parts},
            "confidence": 0.95,
            "per_pair_scores": "per_pair_scores.jsonl",
        }

    def write(self, folder: Path) -> Path:
        """Write eval_report.json and per_pair_scores.jsonl into folder; return the report's path."""
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "per_pair_scores.jsonl").open("w") as f:
            for row in self.per_pair:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        path = folder / "eval_report.json"
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        return path

