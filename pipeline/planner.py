"""Choose the alignment method from the data's shape and the budget: a pure function with reasons.

- pairs, clean       -> DPO: one offline loop on pairs; strong, but it fits label noise too.
- pairs, noisy       -> IPO: its squared loss bounds the margin it chases, so flipped pairs hurt less.
- thumbs only        -> KTO: learns from unpaired up/down, weighting losses more than gains.
- RLHF               -> only when asked for and affordable: reward model + online RL costs about 3x
                        DPO's compute and can reward-hack.
- too little data    -> skip, and say what is missing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pipeline.config import PlanningSettings, TrainingSettings
from pipeline.shape import DataShape

Method = Literal["dpo", "ipo", "kto", "rlhf", "skip"]

RLHF_COST_VS_DPO = 3.0
# Defaults per method. LoRA tolerates (and on short runs needs) a far larger step than full tuning.
DEFAULT_BETA = {"dpo": 0.1, "ipo": 0.5, "kto": 0.1, "rlhf": 0.05}
DEFAULT_LR = {"lora": 2e-4, "full": 5e-6}
# KTO paper: keep desirable_weight*n_desirable / (undesirable_weight*n_undesirable) in [1, 4/3].
KTO_TARGET_RATIO = 1.0


@dataclass(frozen=True)
class Plan:
    method: Method
    hyperparameters: dict[str, Any]
    reasons: tuple[str, ...]
    shape: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["reasons"] = list(self.reasons)
        return d


def _pct(x: float | None) -> str:
    return "unknown" if x is None else f"{100 * x:.1f}%"


def choose_method(shape: DataShape, training: TrainingSettings, planning: PlanningSettings) -> Plan:
    """The Plan for this data: method, hyperparameters and the reasons, in the order they applied."""
    reasons: list[str] = []
    pairs_ok = shape.n_pairs_train >= planning.min_pairs
    minority = None if shape.up_share is None else min(shape.up_share, 1 - shape.up_share)
    thumbs_ok = shape.n_unpaired_train >= planning.min_unpaired and (minority or 0) >= planning.min_minority_share
    flip = shape.pair_agreement.flip_rate
    noisy = flip is not None and flip >= planning.noise_threshold

    def noise_reason() -> str:
        if flip is None:
            return "pair label noise unknown (no pair was judged twice), assumed low"
        side = ">=" if noisy else "<"
        return (f"estimated pair flip rate {_pct(flip)} {side} noise_threshold {_pct(planning.noise_threshold)} "
                f"(from {shape.pair_agreement.repeated_votes} votes on repeated pairs)")

    def pairs_method() -> Method:
        reasons.append(noise_reason())
        if noisy:
            reasons.append("IPO: its squared loss stops at a fixed margin, so flipped pairs pull less than in DPO")
            return "ipo"
        reasons.append("DPO: clean pairs, one offline loop, no reward model")
        return "dpo"

    def thin() -> Plan:
        reasons.append(
            f"skip: too little data to train — {shape.n_pairs_train} training pairs (need {planning.min_pairs}) "
            f"and {shape.n_unpaired_train} training thumbs (need {planning.min_unpaired}, with at least "
            f"{_pct(planning.min_minority_share)} of the rarer label; have {_pct(minority)})"
        )
        return Plan("skip", {}, tuple(reasons), shape.to_dict())

    requested = training.method
    if requested == "auto":
        if pairs_ok:
            reasons.append(f"{shape.n_pairs_train} training pairs >= min_pairs {planning.min_pairs}")
            method = pairs_method()
            if shape.n_unpaired:
                reasons.append(f"{shape.n_unpaired} thumbs rows left out: pairs carry the stronger signal")
        elif thumbs_ok:
            reasons.append(
                f"{shape.n_pairs_train} training pairs < min_pairs {planning.min_pairs}, but "
                f"{shape.n_unpaired_train} training thumbs with {_pct(shape.up_share)} up"
            )
            reasons.append("KTO: learns from unpaired thumbs up/down")
            method = "kto"
        else:
            return thin()
    elif requested == "rlhf":
        if not pairs_ok:
            return thin()
        budget = planning.rlhf_compute_budget
        if budget >= RLHF_COST_VS_DPO:
            reasons.append(
                f"RLHF asked for and affordable: rlhf_compute_budget {budget:g} >= {RLHF_COST_VS_DPO:g}x DPO; "
                "watch the reward model for reward hacking"
            )
            method = "rlhf"
        else:
            reasons.append(
                f"RLHF asked for but not affordable: it costs about {RLHF_COST_VS_DPO:g}x DPO and "
                f"planning.rlhf_compute_budget is {budget:g}; raise it to {RLHF_COST_VS_DPO:g} to allow RLHF"
            )
            method = pairs_method()
    else:
        method = requested
        reasons.append(f"training.method set to {requested}")
        if method in ("dpo", "ipo") and not pairs_ok:
            return thin()
        if method == "kto" and not (thumbs_ok or pairs_ok):
            return thin()
        if method in ("dpo", "ipo"):
            reasons.append(noise_reason())

    return Plan(method, _hyperparameters(method, shape, training, reasons), tuple(reasons), shape.to_dict())


def _hyperparameters(method: Method, shape: DataShape, training: TrainingSettings, reasons: list[str]) -> dict[str, Any]:
    lora = training.lora.enabled
    hp: dict[str, Any] = {
        "max_steps": training.max_steps,
        "learning_rate": training.learning_rate or DEFAULT_LR["lora" if lora else "full"],
        "beta": training.beta or DEFAULT_BETA[method],
        "per_device_batch_size": training.per_device_batch_size,
        "gradient_accumulation_steps": training.gradient_accumulation_steps,
        "max_length": training.max_length,
        "seed": training.seed,
        "lora": training.lora.model_dump(mode="json") if lora else None,
    }
    if method == "dpo":
        hp["loss_type"] = ["sigmoid"]
    elif method == "ipo":
        hp["loss_type"] = ["ipo"]
        if training.beta is None:
            reasons.append(f"IPO tau {hp['beta']}: a target log-ratio margin of 1/(2 tau) = {1 / (2 * hp['beta']):g}")
    elif method == "rlhf":
        # Reward model first (as many steps as the policy gets), then RLOO: each prompt gets
        # num_generations sampled answers, each scored by the reward model against its siblings.
        hp["reward_steps"] = training.max_steps
        hp["reward_learning_rate"] = hp["learning_rate"]
        hp["num_generations"] = 2
        hp["max_completion_length"] = 64
        hp["temperature"] = 1.0
        if hp["per_device_batch_size"] % hp["num_generations"]:
            hp["per_device_batch_size"] += 1
            reasons.append("RLOO samples answers in pairs: batch size rounded up to an even number")
        reasons.append(f"RLHF KL coefficient beta {hp['beta']}: keeps the policy near the base against reward hacking")
    elif method == "kto":
        hp["loss_type"] = "kto"
        if training.per_device_batch_size < 2:
            hp["per_device_batch_size"] = 2
            reasons.append("KTO's KL term needs at least 2 rows per device batch: batch size raised to 2")
        n_desirable, n_undesirable = _kto_counts(shape)
        hp["undesirable_weight"] = 1.0
        # Rounded up: rounding down could leave the ratio just under 1, outside the advised range.
        weight = KTO_TARGET_RATIO * n_undesirable / max(n_desirable, 1)
        hp["desirable_weight"] = math.ceil(weight * 10_000) / 10_000 if n_undesirable else 1.0
        reasons.append(
            f"KTO weights: desirable {hp['desirable_weight']} x {n_desirable} up vs undesirable 1.0 x "
            f"{n_undesirable} down: weighted totals 1:1, inside the advised 1 to 4/3"
        )
    return hp


def _kto_counts(shape: DataShape) -> tuple[int, int]:
    """Desirable/undesirable counts KTO will see: thumbs, or pairs unpaired when there are no thumbs."""
    if shape.n_unpaired:
        return shape.n_up, shape.n_down
    return shape.n_pairs, shape.n_pairs
