"""Choose the alignment method from the data's shape and the budget: a pure function with reasons.

Each rule below reads alone and either decides or passes; they are tried in order. The evidence for
each is the tuning regimes of `alignloop bench methods` (BENCHMARKS.md "Methods"; EVIDENCE names the
rows, and the plan's reasons cite them):
- too little data    -> skip, and say what is missing.
- asked for RLHF     -> only when affordable: reward model + online RL costs about 3x DPO's compute.
- a method asked for -> that method, if the data can feed it.
- pairs and thumbs   -> IPO on the pairs plus pairs built from the thumbs (an up and a down answer to
                        one prompt), so neither kind of feedback is thrown away.
- pairs              -> IPO: its loss stops at a fixed margin, so the model drifts less and flipped pairs
                        pull less. DPO when the whole 95 % interval of the flip rate lies at or above
                        planning.dpo_noise_threshold (25 %): on heavily flipped pairs DPO had the lowest
                        regret in the held-out draws, IPO and KTO the highest. Robust DPO only when the
                        whole interval lies at or above planning.noise_threshold (by default never: no
                        noise level where it paid).
- thumbs only        -> IPO on the pairs the thumbs make; KTO on the thumbs, weighted so up and down
                        count alike, when the thumbs make too few pairs (one answer a prompt: nothing
                        to pair; fewer than planning.kto_below_thumb_pairs, 100) or when the whole 95 %
                        interval of the thumbs' own flip rate lies at or above
                        planning.kto_noise_threshold.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from alignloop.config import PlanningSettings, TrainingSettings
from alignloop.methods import METHODS
from alignloop.profile import DataProfile, NoiseEstimate
from alignloop.steptime import StepTime, pick

# A plan's method: a registered one (alignloop.methods), or skip.
Method = Literal[(*METHODS, "skip")]  # type: ignore[valid-type]

RLHF_COST_VS_DPO = 3.0
# Defaults per method (each method's registration holds its beta). LoRA tolerates (and on short runs
# needs) a far larger step than full tuning.
DEFAULT_BETA = {name: method.default_beta for name, method in METHODS.items()}
DEFAULT_LR = {"lora": 2e-4, "full": 5e-6}
# KTO paper: keep desirable_weight*n_desirable / (undesirable_weight*n_undesirable) in [1, 4/3].
KTO_TARGET_RATIO = 1.0
# The rows of BENCHMARKS.md "Methods" (the tuning regimes of `alignloop bench methods`) each rule rests on;
# the plan's reasons and the README's planner table cite them.
EVIDENCE = {
    "ipo": "IPO best in clean_pairs, large_pairs_flip10, length_biased_pairs, deterministic_many_epochs; "
           "every arm tied in pairs_flip25, few_pairs_flip40, small_pairs",
    "noisy": "robust DPO never best in pairs_flip25 or few_pairs_flip40",
    "dpo_noisy": "in draws 3-5, where the whole interval lay at or above 25% (29 seeds of 16 regimes), mean regret "
                 "DPO 2.5 points, KTO 6.2, IPO 7.0; over all 53 held-out regimes with 20% or more flipped pairs, "
                 "DPO 1.4, robust DPO 2.0, KTO 2.8, IPO 3.5; KTO 14-28 points behind in drawn6151-16, "
                 "drawn8641-29; IPO stays below 20% (regret 0.1 under 10%, DPO 4.8); scored on a fresh draw (seed "
                 "9173), the rule fired in 5 regimes, tied or best in 4 (drawn9173-18: KTO best)",
    "mixed": "IPO best in few_pairs_many_thumbs, tied in many_pairs_few_thumbs and mixed_pairs_2per_thumbs",
    "pairs_only": "IPO on the pairs alone best in pairs_and_unpairable_thumbs, KTO on everything tied",
    "thumb_pairs": "IPO best in thumbs_1to1, thumbs_1to10, thumbs_10to1, thumbs_2per_1to1, thumbs_2per_1to10",
    "kto": "KTO the only arm that learns in thumbs_unpairable, thumbs_unpairable_1to10",
    "kto_noisy_thumbs": "KTO best in drawn2311-03, drawn8641-00, -28 and ahead of IPO in drawn8641-35, the "
                        "thumbs-only regimes of the first three draws whose whole thumb flip-rate interval lay at or "
                        "above 25%; IPO stayed ahead where it lay lower, as in drawn5077-26; scored on a fresh draw, "
                        "the thumbs rules chose KTO in 7 regimes and the planner was tied or best in all 7 "
                        "(drawn3697-06, -08, -11, -16, -23, -26, -29)",
    "kto_few_thumb_pairs": "KTO best in drawn2311-12, drawn5077-11, drawn8641-06 and -37, thumbs-only regimes of the "
                           "first three draws whose thumbs made 55-86 pairs; tied in thumbs_2per_1to10 (79 pairs); "
                           "IPO ahead from thumbs_1to10 (193 pairs) up",
}
# label_smoothing at 0.5 would cancel the loss; the robust loss also grows unstable close to it.
MAX_LABEL_SMOOTHING = 0.4
# The batch size an unset training.per_device_batch_size gets between few rows (2) and many (8).
DEFAULT_BATCH = 4
# Data-size scaling of steps: passes over the training rows, and the bounds on the result.
EPOCHS = 2.0
MIN_STEPS, MAX_STEPS = 10, 400
# Rows at which the default beta applies; fewer rows keep the model nearer the base (beta up to 2x).
BETA_REFERENCE_ROWS = 1000

# Which rows training reads (hyperparameters["train_on"]).
TRAIN_ON = {
    "pairs": "the pairs",
    "pairs+thumb_pairs": "the pairs plus pairs built from thumbs (an up and a down answer to one prompt)",
    "thumbs": "the thumbs",
    "thumbs+unpaired_pairs": "the thumbs plus each pair as one up and one down answer",
    "unpaired_pairs": "each pair as one up and one down answer",
}


@dataclass(frozen=True)
class Plan:
    method: Method
    hyperparameters: dict[str, Any]
    reasons: tuple[str, ...]
    shape: dict[str, Any] = field(default_factory=dict)
    # Expected wall time: steps, seconds a step, setup seconds, total, and whether the step time was measured.
    estimate: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["reasons"] = list(self.reasons)
        return d


@dataclass(frozen=True)
class Decision:
    """What a rule decided: the method, its loss, the rows it trains on, and why."""

    method: Method
    train_on: str = "pairs"
    loss: str | None = None              # DPO's loss_type: sigmoid | robust | ipo
    label_smoothing: float = 0.0
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Facts:
    """The numbers every rule reads, worked out once."""

    shape: DataProfile
    training: TrainingSettings
    planning: PlanningSettings
    step_times: dict[str, StepTime] = field(default_factory=dict)   # the last runs' measured speed, per method

    @property
    def thumb_pairs(self) -> int:
        return self.shape.pairs_from_thumbs_train

    @property
    def pairs_ok(self) -> bool:
        return self.shape.n_pairs_train >= self.planning.min_pairs

    @property
    def pairs_with_thumb_pairs_ok(self) -> bool:
        return self.shape.n_pairs_train + self.thumb_pairs >= self.planning.min_pairs

    @property
    def minority(self) -> float | None:
        s = self.shape
        return None if not s.n_unpaired_train else min(s.n_up_train, s.n_down_train) / s.n_unpaired_train

    @property
    def thumbs_ok(self) -> bool:
        return (self.shape.n_unpaired_train >= self.planning.min_unpaired
                and (self.minority or 0.0) >= self.planning.min_minority_share)

    @property
    def flip(self) -> float | None:
        return self.shape.pair_flip_rate

    def noise_at_or_above(self, threshold: float) -> bool:
        """The whole 95 % interval of the pairs' flip-rate estimate lies at or above `threshold`."""
        return _wholly_at_or_above(self.shape.pair_noise, threshold)

    @property
    def noisy(self) -> bool:
        """Robust DPO's case: the whole interval at or above planning.noise_threshold."""
        return self.noise_at_or_above(self.planning.noise_threshold)

    @property
    def dpo_noisy(self) -> bool:
        """Plain DPO's case: the whole interval at or above planning.dpo_noise_threshold (robust DPO's comes
        first)."""
        return not self.noisy and self.noise_at_or_above(self.planning.dpo_noise_threshold)

    @property
    def kto_noisy_thumbs(self) -> bool:
        """KTO's case for thumbs only: the whole interval of the thumbs' own flip-rate estimate at or above
        planning.kto_noise_threshold."""
        return _wholly_at_or_above(self.shape.thumb_noise, self.planning.kto_noise_threshold)


def _wholly_at_or_above(noise: NoiseEstimate | None, threshold: float) -> bool:
    """The whole 95 % interval of a flip-rate estimate lies at or above `threshold`."""
    return noise is not None and noise.low is not None and noise.low >= threshold


def _pct(x: float | None) -> str:
    return "unknown" if x is None else f"{100 * x:.1f}%"


# ------------------------------------------------------------------------------------------- rules
Rule = Callable[[Facts], Decision | None]


def rule_too_little(f: Facts) -> Decision | None:
    """Skip when neither pairs (with those built from thumbs) nor thumbs are enough to train on."""
    if f.pairs_ok or f.pairs_with_thumb_pairs_ok or f.thumbs_ok:
        return None
    return Decision("skip", reasons=(
        f"skip: too little data to train — {f.shape.n_pairs_train} training pairs and {f.thumb_pairs} pairs from "
        f"thumbs (need {f.planning.min_pairs}), {f.shape.n_unpaired_train} training thumbs (need "
        f"{f.planning.min_unpaired}, with at least {_pct(f.planning.min_minority_share)} of the rarer label; "
        f"have {_pct(f.minority)})",))


def rule_rlhf(f: Facts) -> Decision | None:
    """RLHF only when asked for, with pairs for its reward model, and affordable."""
    if f.training.method != "rlhf":
        return None
    if not f.pairs_ok:
        return Decision("skip", reasons=(f"skip: RLHF's reward model needs {f.planning.min_pairs} training pairs; "
                                         f"there are {f.shape.n_pairs_train}",))
    budget = f.planning.rlhf_compute_budget
    if budget >= RLHF_COST_VS_DPO:
        return Decision("rlhf", reasons=(
            f"RLHF asked for and affordable: rlhf_compute_budget {budget:g} >= {RLHF_COST_VS_DPO:g}x DPO; "
            "watch the reward model for reward hacking",))
    fallback = rule_pairs(f)
    return Decision(fallback.method, fallback.train_on, fallback.loss, fallback.label_smoothing, (
        f"RLHF asked for but not affordable: it costs about {RLHF_COST_VS_DPO:g}x DPO and "
        f"planning.rlhf_compute_budget is {budget:g}; raise it to {RLHF_COST_VS_DPO:g} to allow RLHF",
        *fallback.reasons))


def rule_forced(f: Facts) -> Decision | None:
    """training.method set to a registered method (RLHF's own rule comes first): that method, when the data
    can feed it. A thumbs method also trains on pairs as up and down answers; a pairs method on pairs
    built from thumbs."""
    method = f.training.method
    if method == "auto":
        return None
    said = f"training.method set to {method}"
    if METHODS[method].feedback == "thumbs":
        if not (f.thumbs_ok or f.pairs_ok):
            return Decision("skip", reasons=(said, f"skip: {method.upper()} needs {f.planning.min_unpaired} thumbs "
                                                   f"with both labels, or {f.planning.min_pairs} pairs to unpair"))
        train_on = ("thumbs+unpaired_pairs" if f.shape.n_pairs_train else "thumbs") if f.thumbs_ok else "unpaired_pairs"
        return Decision(method, train_on, reasons=(said, f"{method.upper()} trains on {TRAIN_ON[train_on]}"))
    if not f.pairs_with_thumb_pairs_ok:
        return Decision("skip", reasons=(said, f"skip: {method.upper()} needs {f.planning.min_pairs} training pairs "
                                               f"(pairs from thumbs included); there are "
                                               f"{f.shape.n_pairs_train + f.thumb_pairs}"))
    train_on = "pairs+thumb_pairs" if f.thumb_pairs else "pairs"
    return Decision(method, train_on, METHODS[method].loss_type,
                    reasons=(said, _noise_reason(f), f"trains on {TRAIN_ON[train_on]}"))


def rule_mixed(f: Facts) -> Decision | None:
    """Pairs and thumbs both: IPO on the pairs plus the pairs the thumbs give, so neither is dropped."""
    if not (f.shape.n_pairs_train and f.thumb_pairs and f.pairs_with_thumb_pairs_ok):
        return None
    base = _pairs_decision(f, "pairs+thumb_pairs")
    return Decision(base.method, base.train_on, base.loss, base.label_smoothing, (
        f"{f.shape.n_pairs_train} training pairs and {f.thumb_pairs} pairs built from thumbs on "
        f"{f.shape.pairable_prompts_train} prompts with an up and a down answer: trained on together "
        f"(bench methods: {EVIDENCE['mixed']})",
        *base.reasons))


def rule_pairs(f: Facts) -> Decision | None:
    """Pairs enough to train on: IPO (DPO or robust DPO past their noise thresholds). Thumbs that make no pair
    are left out: IPO on the pairs alone did no worse than KTO on everything."""
    if not f.pairs_ok:
        return None
    d = _pairs_decision(f, "pairs")
    left_out = ()
    if f.shape.n_unpaired_train:
        left_out = (f"{f.shape.n_unpaired_train} thumbs left out: no prompt has both an up and a down answer, so they "
                    f"make no pairs (bench methods: {EVIDENCE['pairs_only']})",)
    return Decision(d.method, d.train_on, d.loss, d.label_smoothing,
                    (f"{f.shape.n_pairs_train} training pairs >= min_pairs {f.planning.min_pairs}", *d.reasons, *left_out))


def _thumb_noise_reason(f: Facts, outcome: str) -> str:
    """What the thumbs' own noise estimate says and whether it is acted on (KTO at or above
    planning.kto_noise_threshold), ending with the method it leads to."""
    threshold = f"kto_noise_threshold {_pct(f.planning.kto_noise_threshold)}"
    noise = f.shape.thumb_noise
    if noise is None:
        tried = [s for s in f.shape.noise_signals if s.signal in THUMB_SIGNALS]
        why = "; ".join(f"{s.signal}: {s.detail}" for s in tried if s.detail) or "no signal measured"
        return f"thumb label noise not measured ({why}), so treated as low: {outcome}"
    return _estimate_said("thumb", noise, threshold, f.planning.kto_noise_threshold, f.kto_noisy_thumbs, f": {outcome}")


def rule_thumbs_kto(f: Facts) -> Decision | None:
    """Thumbs only, enough for KTO and making pairs, where KTO on the thumbs served better than IPO on their
    pairs: heavily flipped thumbs (the whole interval at or above planning.kto_noise_threshold), or thumbs
    that make fewer pairs than planning.kto_below_thumb_pairs, where KTO reads every thumb and IPO a few pairs."""
    if f.shape.n_pairs_train or not f.thumbs_ok or f.thumb_pairs < f.planning.min_pairs:
        return None
    counts = (f"no pairs; {f.shape.n_unpaired_train} training thumbs ({f.shape.n_up_train} up, "
              f"{f.shape.n_down_train} down) make {f.thumb_pairs} pairs on {f.shape.pairable_prompts_train} prompts "
              "with an up and a down answer")
    if f.kto_noisy_thumbs:
        return Decision("kto", "thumbs", reasons=(
            counts, _thumb_noise_reason(f, "KTO"),
            "KTO on the thumbs: it scores each answer alone against a reference point and saturates, so a flipped "
            "thumb moves one answer a bounded step, where a pair built from it pulls two answers' margin the wrong "
            f"way (bench methods: {EVIDENCE['kto_noisy_thumbs']})"))
    if f.thumb_pairs < f.planning.kto_below_thumb_pairs:
        return Decision("kto", "thumbs", reasons=(
            f"{counts}: fewer than kto_below_thumb_pairs {f.planning.kto_below_thumb_pairs}",
            f"KTO on all {f.shape.n_unpaired_train} thumbs instead of IPO on {f.thumb_pairs} pairs "
            f"(bench methods: {EVIDENCE['kto_few_thumb_pairs']})"))
    return None


def rule_thumbs_as_pairs(f: Facts) -> Decision | None:
    """Thumbs only, with enough pairs built from them (up vs down answers to one prompt): IPO on those pairs.

    Its squared loss stops at a fixed margin, where DPO keeps pushing pairs whose two answers the thumbs
    barely tell apart, and where KTO sees each answer alone."""
    if f.shape.n_pairs_train or f.thumb_pairs < f.planning.min_pairs:
        return None
    return Decision("ipo", "pairs+thumb_pairs", "ipo", reasons=(
        f"no pairs, but {f.thumb_pairs} pairs built from thumbs on {f.shape.pairable_prompts_train} prompts with an "
        f"up and a down answer >= min_pairs {f.planning.min_pairs}",
        _thumb_noise_reason(f, "IPO"),
        f"IPO on pairs from thumbs (bench methods: {EVIDENCE['thumb_pairs']})",))


def rule_thumbs(f: Facts) -> Decision | None:
    """Thumbs only (or too few pairs): KTO learns from unpaired up/down answers."""
    if not f.thumbs_ok:
        return None
    return Decision("kto", "thumbs", reasons=(
        f"{f.shape.n_pairs_train} training pairs < min_pairs {f.planning.min_pairs}, "
        f"but {f.shape.n_unpaired_train} training thumbs ({f.shape.n_up_train} up, {f.shape.n_down_train} down)",
        f"KTO: learns from unpaired thumbs up/down; they make only {f.thumb_pairs} pairs, so IPO on pairs from "
        f"thumbs (min_pairs {f.planning.min_pairs}) would train on nothing (bench methods: {EVIDENCE['kto']})",))


def rule_thumb_pairs(f: Facts) -> Decision | None:
    """Thumbs too one-sided or too few for KTO, but enough pairs built from them: IPO on those."""
    if not f.pairs_with_thumb_pairs_ok:
        return None
    base = _pairs_decision(f, "pairs+thumb_pairs")
    return Decision(base.method, base.train_on, base.loss, base.label_smoothing, (
        f"{f.thumb_pairs} pairs built from thumbs (plus {f.shape.n_pairs_train} pairs) >= min_pairs "
        f"{f.planning.min_pairs}", *base.reasons))


RULES: tuple[Rule, ...] = (rule_rlhf, rule_forced, rule_too_little, rule_mixed, rule_pairs, rule_thumbs_kto,
                           rule_thumbs_as_pairs, rule_thumbs, rule_thumb_pairs)
# The noise signals read from thumbs; the rest read pairs.
THUMB_SIGNALS = ("contradictory_thumbs", "annotator_thumbs", "reward_model_thumbs")


def _noise_reason(f: Facts, outcome: str = "") -> str:
    """What the pairs' noise estimate says and whether it is acted on, in words that cannot be misread;
    `outcome` (the method it leads to) ends the sentence when given. An estimate is acted on only where
    its whole 95 % interval lies: at or above a threshold (noise_threshold: robust DPO, dpo_noise_threshold:
    DPO), or below the lower of them (clean)."""
    then = f": {outcome}" if outcome else ""
    robust, dpo = f.planning.noise_threshold, f.planning.dpo_noise_threshold
    name, value = ("noise_threshold", robust) if f.noisy or robust <= dpo else ("dpo_noise_threshold", dpo)
    threshold = f"{name} {_pct(value)}"
    noise = f.shape.pair_noise
    if noise is None:
        tried = [s for s in f.shape.noise_signals if s.signal not in THUMB_SIGNALS]
        weak = [s for s in tried if s.flip_rate is not None]
        if weak:
            e = min(weak, key=lambda s: s.high - s.low)
            return (f"estimated pair flip rate {_pct(e.flip_rate)} ({e.signal}), but from {e.support} {e.unit}, "
                    f"too few to act on, so treated as low{then}")
        why = "; ".join(f"{s.signal}: {s.detail}" for s in tried) or "no signal measured"
        return f"pair label noise not measured ({why}), so treated as low{then}"
    return _estimate_said("pair", noise, threshold, value, f.noisy or f.dpo_noisy, then)


def _estimate_said(kind: str, noise: NoiseEstimate, threshold: str, value: float, acted: bool, then: str) -> str:
    """One estimate in words: its value and where its whole 95 % interval lies against `threshold` (named,
    and `value` itself): at or above it (`acted`), below it, or holding it (too wide to act on)."""
    said = f"estimated {kind} flip rate {_pct(noise.flip_rate)} ({noise.signal}, from {noise.support} {noise.unit})"
    interval = f"the 95% interval {_pct(noise.low)}–{_pct(noise.high)}"
    if acted:
        return f"{said}: {interval} lies at or above {threshold}{then}"
    if noise.high < value:
        return f"{said}: {interval} lies below {threshold}{then}"
    return f"{said}, but {interval} holds {threshold} inside it: too wide to act on, so treated as low{then}"


def _pairs_decision(f: Facts, train_on: str) -> Decision:
    """IPO on `train_on`; DPO when the whole interval of the flip rate lies at or above
    planning.dpo_noise_threshold; robust DPO when it lies at or above planning.noise_threshold (by default
    it never does)."""
    if f.dpo_noisy:
        return Decision("dpo", train_on, METHODS["dpo"].loss_type, reasons=(
            _noise_reason(f, "DPO"),
            "DPO: on heavily flipped pairs it lost the least against the best method of the four in the held-out "
            f"draws, where IPO and KTO lost the most (bench methods: {EVIDENCE['dpo_noisy']})"))
    if not f.noisy:
        return Decision("ipo", train_on, loss="ipo", reasons=(
            _noise_reason(f, "IPO"),
            "IPO: its squared loss pulls each pair's margin to a fixed target instead of pushing it without bound, "
            f"so the model drifts less from the base and flipped pairs pull less (bench methods: {EVIDENCE['ipo']})"))
    smoothing = round(min(f.flip or 0.0, MAX_LABEL_SMOOTHING), 4)
    return Decision("dpo", train_on, loss="robust", label_smoothing=smoothing, reasons=(
        _noise_reason(f, "robust DPO"),
        f"robust DPO (cDPO): label_smoothing {smoothing} tells the loss that share of labels is wrong, so flipped "
        f"pairs are expected instead of fitted (chosen by your noise_threshold; bench methods: {EVIDENCE['noisy']})"))


def choose_method(shape: DataProfile, training: TrainingSettings, planning: PlanningSettings,
                  step_times: dict[str, StepTime] | None = None) -> Plan:
    """The Plan for this data: method, hyperparameters and the reasons, in the order they applied.

    step_times: the last runs' measured training speed on this machine (alignloop.steptime), per method;
    the plan's expected wall time and the planning.budget_minutes bound rest on it when there is one."""
    facts = Facts(shape, training, planning, dict(step_times or {}))
    # The first rule that decides wins; rule_too_little decides whenever no later rule could.
    decision = next(d for d in (rule(facts) for rule in RULES) if d is not None)
    reasons = list(decision.reasons)
    if decision.method == "skip":
        return Plan("skip", {}, tuple(reasons), shape.to_dict())
    hp = _hyperparameters(decision, facts, reasons)
    estimate = expected_time(decision, facts, hp)
    reasons.append(describe_estimate(estimate))
    return Plan(decision.method, hp, tuple(reasons), shape.to_dict(), estimate)


# --------------------------------------------------------------------------------- hyperparameters
def training_rows(d: Decision, f: Facts) -> int:
    """How many rows the trainer will see, for scaling steps and beta."""
    s = f.shape
    return {
        "pairs": s.n_pairs_train,
        "pairs+thumb_pairs": s.n_pairs_train + f.thumb_pairs,
        "thumbs": s.n_unpaired_train,
        "thumbs+unpaired_pairs": s.n_unpaired_train + 2 * s.n_pairs_train,
        "unpaired_pairs": 2 * s.n_pairs_train,
    }[d.train_on]


def _max_length(f: Facts, hp: dict[str, Any], reasons: list[str]) -> None:
    """Say what max_length will cut; fix it in the plan when it was chosen from tokenizer-counted lengths, so
    training uses the length the plan states (with approximate counts, training chooses it from real ones)."""
    t = f.shape.truncation
    if t is None:
        return
    if t.exact:
        reasons.append(t.describe())
        if t.chosen:
            hp["max_length"] = t.max_length
            hp["max_length_reason"] = f"{t.choice()} by the plan, counted with the {t.counted_with}"
        return
    if t.chosen:
        reasons.append(f"max_length not fixed by the plan: lengths here are an {t.counted_with}; training chooses it "
                       f"from the rows' real token lengths (about {t.max_length} by this count)")
    else:
        reasons.append(t.describe())


def _scaled_steps(d: Decision, rows: int, batch: int, f: Facts, reasons: list[str]) -> int:
    """Steps for EPOCHS passes over the rows, within [MIN_STEPS, MAX_STEPS] and the time budget."""
    if f.training.max_steps is not None:
        return f.training.max_steps
    wanted = math.ceil(EPOCHS * rows / batch)
    steps = min(max(wanted, MIN_STEPS), MAX_STEPS)
    if wanted > MAX_STEPS:  # the cap, not the passes, sets the steps: say how much of the data they read
        why = (f"{steps} steps: capped at {MAX_STEPS}, {steps * batch / rows:.2g} passes over {rows} rows at {batch} "
               f"a step ({EPOCHS:g} passes would take {wanted}; set training.max_steps for more)")
    else:
        why = (f"{steps} steps: about {EPOCHS:g} passes over {rows} rows at {batch} a step (bounded to "
               f"{MIN_STEPS}–{MAX_STEPS})")
    budget = f.planning.budget_minutes
    if budget is not None:
        pace = training_pace(d, f, rows, batch)
        affordable = max(1, int((budget * 60 - pace.setup_seconds) / pace.step_seconds))
        if affordable < steps:
            steps = affordable
            why = (f"{steps} steps: planning.budget_minutes {budget:g} at about {pace.step_seconds:.1f} s a step "
                   f"{pace.source}, after about {pace.setup_seconds / 60:.1f} min of setup (fewer than the {EPOCHS:g} "
                   f"passes over {rows} rows it would take)")
    reasons.append(why)
    return steps


@dataclass(frozen=True)
class Pace:
    """How long a step and the setup before the first step should take, and where that comes from."""

    step_seconds: float
    setup_seconds: float
    measured: bool
    source: str


def tokens_per_step(d: Decision, f: Facts, batch: int) -> float | None:
    """Prompt + answer tokens a step trains on: rows a step x sequences a row x a row's mean tokens after fitting."""
    t = f.shape.truncation
    if t is None or t.mean_kept_tokens is None:
        return None
    return batch * (1 if d.method == "kto" else 2) * t.mean_kept_tokens


def training_pace(d: Decision, f: Facts, rows: int, batch: int) -> Pace:
    """Step and setup seconds from the last run's measurement on this machine (scaled to this plan's tokens a
    step), or planning.seconds_per_step when nothing has been measured yet."""
    measured = pick(f.step_times, d.method)
    if measured is None:
        return Pace(f.planning.seconds_per_step, 0.0, False,
                    "(planning.seconds_per_step, assumed: no training has been timed here yet)")
    tokens = tokens_per_step(d, f, batch)
    scaled = "" if tokens is None else f", scaled to about {tokens:.0f} tokens a step here"
    factor = passes_ratio(d.method, measured.method)
    if factor != 1.0:
        scaled += (f", x{factor:g} for {d.method.upper()}'s {METHODS[d.method].passes_per_token:g} model passes a "
                   f"token against {measured.method.upper()}'s {METHODS[measured.method].passes_per_token:g}")
    whose = "" if measured.before_plan else "the last run's "
    return Pace(measured.step_seconds(tokens) * factor, measured.setup_seconds_for(rows), True,
                f"({whose}{measured.describe()}{scaled})")


def passes_ratio(method: str, measured_method: str) -> float:
    """How much more a token costs `method` than the method whose step time was measured (1 for the same)."""
    if method == measured_method or method not in METHODS or measured_method not in METHODS:
        return 1.0
    return METHODS[method].passes_per_token / METHODS[measured_method].passes_per_token


def expected_time(d: Decision, f: Facts, hp: dict[str, Any]) -> dict[str, Any]:
    """The plan's expected wall time: setup plus its steps at the pace training_pace gives."""
    batch = hp["per_device_batch_size"] * hp["gradient_accumulation_steps"]
    pace = training_pace(d, f, training_rows(d, f), batch)
    return {"steps": hp["max_steps"], "seconds_per_step": float(f"{pace.step_seconds:.4g}"),
            "tokens_per_step": tokens_per_step(d, f, batch),
            "setup_seconds": round(pace.setup_seconds, 1),
            "wall_seconds": round(pace.setup_seconds + hp["max_steps"] * pace.step_seconds, 1),
            "measured": pace.measured, "source": pace.source}


def describe_estimate(e: dict[str, Any]) -> str:
    setup = f" after about {e['setup_seconds'] / 60:.1f} min of setup" if e["setup_seconds"] else ""
    return (f"expected wall time about {e['wall_seconds'] / 60:.1f} min: {e['steps']} steps at about "
            f"{e['seconds_per_step']:.3g} s a step{setup} {e['source']}")


def _scaled_batch(rows: int, f: Facts) -> int:
    """training.per_device_batch_size when set; else by the rows' count: fewer rows, smaller batches."""
    if f.training.per_device_batch_size is not None:
        return f.training.per_device_batch_size
    return 2 if rows < 64 else 8 if rows >= 4000 else DEFAULT_BATCH


def _scaled_beta(method: Method, rows: int, f: Facts, reasons: list[str]) -> float:
    if f.training.beta is not None:
        return f.training.beta
    factor = min(max(math.sqrt(BETA_REFERENCE_ROWS / max(rows, 1)), 1.0), 2.0)
    beta = round(DEFAULT_BETA[method] * factor, 4)
    if factor > 1.0:
        reasons.append(f"beta {beta}: {rows} rows is little evidence, so the model is kept nearer the base "
                       f"(default {DEFAULT_BETA[method]} at {BETA_REFERENCE_ROWS}+ rows)")
    return beta


def _hyperparameters(d: Decision, f: Facts, reasons: list[str]) -> dict[str, Any]:
    training = f.training
    lora = training.lora.enabled
    rows = training_rows(d, f)
    batch = _scaled_batch(rows, f)
    hp: dict[str, Any] = {
        "learning_rate": training.learning_rate or DEFAULT_LR["lora" if lora else "full"],
        "per_device_batch_size": batch,
        "gradient_accumulation_steps": training.gradient_accumulation_steps,
        "max_length": training.max_length,
        "seed": training.seed,
        "lora": training.lora.model_dump(mode="json") if lora else None,
        "train_on": d.train_on,
    }
    _max_length(f, hp, reasons)
    hp["max_steps"] = _scaled_steps(d, rows, batch * training.gradient_accumulation_steps, f, reasons)
    hp["beta"] = _scaled_beta(d.method, rows, f, reasons)
    method = METHODS[d.method]
    if method.feedback == "pairs" and method.loss_type:
        _pair_loss_settings(d, f, hp, reasons)
    elif d.method == "rlhf":
        _rlhf_settings(hp, reasons)
    elif d.method == "kto":
        _kto_settings(d, f, hp, reasons)
    _sft_term(d, f, hp, reasons)
    return hp


def _pair_loss_settings(d: Decision, f: Facts, hp: dict[str, Any], reasons: list[str]) -> None:
    """A DPOTrainer method's loss: the decision's (robust on noisy pairs) or the method's own."""
    hp["loss_type"] = [d.loss or METHODS[d.method].loss_type]
    if d.loss == "robust":
        hp["label_smoothing"] = d.label_smoothing
    if d.method == "ipo" and f.training.beta is None:
        reasons.append(f"IPO tau {hp['beta']}: a target log-ratio margin of 1/(2 tau) = {1 / (2 * hp['beta']):g}")


def _sft_term(d: Decision, f: Facts, hp: dict[str, Any], reasons: list[str]) -> None:
    """training.sft_weight: TRL's `sft` loss (the chosen answers' negative log-likelihood) beside a pair method's
    preference loss, which keeps weight 1."""
    weight = f.training.sft_weight
    if not METHODS[d.method].takes_sft_term:
        if weight:
            reasons.append(f"training.sft_weight {weight:g} does not apply to {d.method}: its TRL trainer has no SFT "
                           "term, so it trains without one")
        return
    hp["sft_weight"] = weight
    if not weight:
        return
    hp["loss_weights"] = [1.0] * len(hp["loss_type"]) + [weight]
    hp["loss_type"] = [*hp["loss_type"], "sft"]
    reasons.append(f"SFT term on the chosen answers, weight {weight:g} (training.sft_weight): loss_type "
                   f"{' + '.join(hp['loss_type'])} with weights {' + '.join(f'{w:g}' for w in hp['loss_weights'])}, "
                   "so the model keeps writing answers like the chosen ones while it learns to rank them")


def _rlhf_settings(hp: dict[str, Any], reasons: list[str]) -> None:
    """Reward model first (as many steps as the policy gets), then RLOO: each prompt gets num_generations
    sampled answers, each scored by the reward model against its siblings."""
    hp["reward_steps"] = hp["max_steps"]
    hp["reward_learning_rate"] = hp["learning_rate"]
    hp["num_generations"] = 2
    hp["max_completion_length"] = 64
    hp["temperature"] = 1.0
    if hp["per_device_batch_size"] % hp["num_generations"]:
        hp["per_device_batch_size"] += 1
        reasons.append("RLOO samples answers in pairs: batch size rounded up to an even number")
    reasons.append(f"RLHF KL coefficient beta {hp['beta']}: keeps the policy near the base against reward hacking")


def _kto_settings(d: Decision, f: Facts, hp: dict[str, Any], reasons: list[str]) -> None:
    """KTO's loss and the weights that make the up and down rows its steps read count alike."""
    hp["loss_type"] = METHODS["kto"].loss_type
    if hp["per_device_batch_size"] < 2:
        hp["per_device_batch_size"] = 2
        reasons.append("KTO's KL term needs at least 2 rows per device batch: batch size raised to 2")
    n_desirable, n_undesirable = kto_counts(d.train_on, f.shape)
    reads = hp["max_steps"] * hp["per_device_batch_size"] * hp["gradient_accumulation_steps"]
    read_up, read_down = kto_read_counts(n_desirable, n_undesirable, reads)
    hp["desirable_weight"], hp["undesirable_weight"] = kto_weights(read_up, read_down)
    ratio = hp["desirable_weight"] * read_up / max(hp["undesirable_weight"] * read_down, 1e-9)
    reasons.append(
        f"KTO weights: desirable {hp['desirable_weight']} x {read_up} up vs undesirable "
        f"{hp['undesirable_weight']} x {read_down} down, the rows {hp['max_steps']} steps of "
        f"{reads // hp['max_steps']} will read from the {n_desirable} up and {n_undesirable} down training rows "
        f"({TRAIN_ON[d.train_on]}): weighted ratio {ratio:.3f}, inside the advised 1 to 4/3")
    cap = f.training.max_train_examples
    if cap is not None and max(f.shape.n_unpaired_train, f.shape.n_pairs_train) > cap:
        reasons.append(f"training.max_train_examples {cap} keeps only the newest rows of each kind, whose up/down "
                       "split the plan cannot see: training re-sets the KTO weights from the rows it reads if "
                       "these fall outside 1 to 4/3, and says so")


def kto_counts(train_on: str, shape: DataProfile) -> tuple[int, int]:
    """Desirable/undesirable training rows KTO trains on: exactly the rows train_on names, nothing else."""
    up, down, pairs = shape.n_up_train, shape.n_down_train, shape.n_pairs_train
    counts = {"thumbs": (up, down), "thumbs+unpaired_pairs": (up + pairs, down + pairs),
              "unpaired_pairs": (pairs, pairs)}
    if train_on not in counts:
        raise ValueError(f"hyperparameters.train_on {train_on!r} is not a KTO input; use one of {sorted(counts)}")
    return counts[train_on]


def kto_read_counts(n_desirable: int, n_undesirable: int, reads: int) -> tuple[int, int]:
    """(desirable, undesirable) rows `reads` row visits read, in KTO's training order.

    That order (pipeline/training/kto.py `kto_order`) spreads each epoch's labels evenly, so its first
    k rows hold exactly floor(k * n_desirable / n) desirable ones: the counts follow from the numbers
    alone, and the plan can state the weights TRL will check.
    """
    n = n_desirable + n_undesirable
    if n <= 0 or reads <= 0:
        return 0, 0
    epochs, rest = divmod(reads, n)
    up = epochs * n_desirable + rest * n_desirable // n
    return up, reads - up


def kto_weights(n_desirable: int, n_undesirable: int) -> tuple[float, float]:
    """(desirable_weight, undesirable_weight) putting desirable*n_d / (undesirable*n_u) in [1, 4/3].

    The rarer side is weighted up (never a weight below 1, so no signal is scaled away); rounding is
    upward on the desirable side so the ratio cannot fall just under 1."""
    if not n_desirable or not n_undesirable:
        return 1.0, 1.0
    if n_desirable >= n_undesirable:
        # Too many ups: weight the downs up until the ratio is at most 4/3, aiming at 1.
        undesirable = math.floor(KTO_TARGET_RATIO * n_desirable / n_undesirable * 10_000) / 10_000
        return 1.0, max(undesirable, 1.0)
    return math.ceil(KTO_TARGET_RATIO * n_undesirable / n_desirable * 10_000) / 10_000, 1.0
