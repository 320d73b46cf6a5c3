"""`alignloop bench methods`: which method wins on which feedback, against a known ground truth, and
how much the planner's choice loses against the best arm (its regret) next to always using one method.

Two sets of synthetic regimes (benchmarks/regimes.py). The tuning set names the cases the literature
argues about: clean, noisy and very noisy pairs, few and many pairs, deterministic preferences trained
for many passes (IPO's argument), length-biased labels, thumbs nobody can pair (KTO's), thumbs at 1:10
and 10:1, and pairs and thumbs mixed in different sizes. The held-out set is drawn at random
(`draw_regimes`) with a recorded seed, after the planner's rules were fixed, and is scored, never
tuned on. In every regime each arm is trained on the tiny offline model with equal compute (the same
steps of the same number of sequences, the steps set by the regime's passes over its data within the
budget's bounds) over several seeds, and scored on held-out pairs whose better answer the hidden rule
decides: the share whose better answer gets the higher implicit reward log pi(y|x) - log pi_ref(y|x).

Arms: dpo, ipo, robust_dpo (label_smoothing = the shape's estimated flip rate) train on the pairs
plus the pairs built from thumbs; with no such pair they cannot train, and the model stays the base
(accuracy 0.5: every margin is 0). kto trains on the thumbs plus every pair as an up and a down
answer. The planner's arm is chosen per seed from that seed's data, as `alignloop plan` would.
Comparisons, ties and regret are benchmarks/regret.py's. Each arm reads its batches from shuffled
epochs of its rows, as TRL's Trainer does; the losses are TRL's (DPOTrainer's sigmoid, ipo and
robust; KTOTrainer's kto with its detached KL baseline from mismatched answers) in a compact
full-weight loop: on a model this small the Trainer's own setup would cost far more than the
training. `--trainer trl` (benchmarks/methods_trl.py) runs TRL's own trainers beside it.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from alignloop.benchmarks import regret
from alignloop.benchmarks.compact_loop import ARMS, Budget, train_regime
from alignloop.benchmarks.regimes import Regime, draw_regimes

# An arm that cannot train, and a plan that skips, leave the base model: every margin 0, accuracy 0.5.
UNTRAINED_ACCURACY = 0.5


TUNING_REGIMES: tuple[Regime, ...] = (
    Regime("clean_pairs", n_pairs=1500),
    Regime("pairs_flip25", n_pairs=1500, flip_rate=0.25),
    Regime("few_pairs_flip40", n_pairs=200, flip_rate=0.40, epochs=4),
    Regime("small_pairs", n_pairs=100),
    Regime("large_pairs_flip10", n_pairs=20_000, flip_rate=0.10),
    Regime("deterministic_many_epochs", n_pairs=100, epochs=8),
    Regime("length_biased_pairs", n_pairs=1500, length_bias=0.5),
    Regime("thumbs_unpairable", n_thumb_prompts=800, answers_per_prompt=1),
    Regime("thumbs_unpairable_1to10", n_thumb_prompts=800, answers_per_prompt=1, up_share=1 / 11),
    Regime("thumbs_1to10", n_thumb_prompts=200, up_share=1 / 11),
    Regime("thumbs_10to1", n_thumb_prompts=200, up_share=10 / 11),
    Regime("thumbs_1to1", n_thumb_prompts=200),
    Regime("few_pairs_many_thumbs", n_pairs=100, n_thumb_prompts=300),
    Regime("many_pairs_few_thumbs", n_pairs=1500, flip_rate=0.10, n_thumb_prompts=25),
    Regime("pairs_and_unpairable_thumbs", n_pairs=300, n_thumb_prompts=1200, answers_per_prompt=1),
    Regime("thumbs_2per_1to1", n_thumb_prompts=400, answers_per_prompt=2),
    Regime("thumbs_2per_1to10", n_thumb_prompts=500, answers_per_prompt=2, up_share=1 / 11),
    Regime("mixed_pairs_2per_thumbs", n_pairs=150, flip_rate=0.2, n_thumb_prompts=600, answers_per_prompt=2,
           up_share=0.25),
)
# Kept for the TRL cross-check and older readers: the tuning set.
REGIMES = TUNING_REGIMES
TUNING_BUDGET = Budget()
# The held-out draw: scored once the rules are fixed, never tuned on. A new draw takes a new seed
# (BENCHMARKS.md "Methods" lists every seed drawn and why).
HELDOUT_SEED = 2311
HELDOUT_COUNT = 24
HELDOUT_BUDGET = Budget(seeds=(0, 1, 2))

QUICK_REGIMES = (Regime("clean_pairs", n_pairs=96), Regime("thumbs_1to1", n_thumb_prompts=24, up_share=0.5))
QUICK_BUDGET = Budget(steps=6, pairs_per_step=4, seeds=(0, 1), heldout=48)
QUICK_DRAWS = 2


def heldout_regimes(seed: int = HELDOUT_SEED, n: int = HELDOUT_COUNT) -> tuple[Regime, ...]:
    return draw_regimes(seed, n)


# ---------------------------------------------------------------------------------------- planning
def plan_for(regime: Regime, seed: int):
    """The shape of the regime's feedback and the plan alignloop would make for it (default settings)."""
    from alignloop.config import PlanningSettings, TrainingSettings
    from alignloop.planner import choose_method
    from alignloop.profile import measure_profile

    unpaired, pairs = regime.build(seed)
    # holdout 0: the benchmark holds out its own prompts (alignloop.benchmarks.regimes.heldout_pairs).
    shape = measure_profile(unpaired, pairs, holdout_fraction=0.0)
    return shape, choose_method(shape, TrainingSettings(), PlanningSettings())


def arm_of(plan) -> str:
    """The benchmark arm a plan corresponds to ("skip" when it trains nothing)."""
    if plan.method == "dpo" and "robust" in (plan.hyperparameters.get("loss_type") or []):
        return "robust_dpo"
    return plan.method


def smoothing_of(shape) -> float:
    """robust_dpo's label_smoothing: the shape's estimated flip rate, capped as the planner caps it."""
    from alignloop.planner import MAX_LABEL_SMOOTHING

    return min(shape.pair_flip_rate or 0.0, MAX_LABEL_SMOOTHING)


def _job(args: tuple) -> dict[str, Any]:
    """Plan for one seed's data as `alignloop plan` would, then train every arm on it."""
    from alignloop.quiet import quiet_libraries

    quiet_libraries()   # in a worker process, no per-model loading bars flooding a piped log
    base_dir, regime, seed, budget = args
    cpu = time.process_time()
    shape, plan = plan_for(regime, seed)
    smoothing = smoothing_of(shape)
    arms = train_regime(base_dir, regime, seed, budget, smoothing)
    return {"regime": regime.name, "seed": seed, "choice": arm_of(plan), "reasons": list(plan.reasons),
            "estimated_flip_rate": shape.pair_flip_rate,
            "noise_signal": None if shape.pair_noise is None else shape.pair_noise.signal,
            "estimated_thumb_flip_rate": None if shape.thumb_noise is None else shape.thumb_noise.flip_rate,
            "thumb_noise_signal": None if shape.thumb_noise is None else shape.thumb_noise.signal,
            "smoothing": smoothing, "arms": arms, "cpu_seconds": time.process_time() - cpu}


# ---------------------------------------------------------------------------------------- the run
def benchmark_sets(quick: bool, sets: tuple[str, ...] = ("tuning", "heldout"), draw_seed: int = HELDOUT_SEED,
                   draws: int = HELDOUT_COUNT) -> dict[str, tuple[tuple[Regime, ...], Budget]]:
    """The regimes and budget of each set to run: the tuning regimes, and a held-out draw."""
    out = {}
    if "tuning" in sets:
        out["tuning"] = (QUICK_REGIMES, QUICK_BUDGET) if quick else (TUNING_REGIMES, TUNING_BUDGET)
    if "heldout" in sets:
        drawn = heldout_regimes(draw_seed, QUICK_DRAWS if quick else draws)
        out["heldout"] = (tuple(_shrunk(r) for r in drawn), QUICK_BUDGET) if quick else (drawn, HELDOUT_BUDGET)
    return out


def _shrunk(regime: Regime) -> Regime:
    """A drawn regime at smoke-run size: its kind, noise, balance and bias, on at most ~100 judgements."""
    return replace(regime, n_pairs=min(regime.n_pairs, 96), n_thumb_prompts=min(regime.n_thumb_prompts, 24))


def run(workdir: Path, *, quick: bool = False, workers: int = 1, progress=None,
        sets: tuple[str, ...] = ("tuning", "heldout"), draw_seed: int = HELDOUT_SEED,
        draws: int = HELDOUT_COUNT) -> dict[str, Any]:
    """Every arm on every regime and seed of each set; returns the result behind the JSON and BENCHMARKS.md."""
    from alignloop.models import build_tiny_model

    chosen = benchmark_sets(quick, sets, draw_seed, draws)
    workdir.mkdir(parents=True, exist_ok=True)
    base_dir = workdir / "tiny-model"
    if not (base_dir / "config.json").exists():
        build_tiny_model(base_dir, seed=0)
    started = time.perf_counter()
    jobs = [(name, (str(base_dir), regime, seed, budget)) for name, (regimes, budget) in chosen.items()
            for regime in regimes for seed in budget.seeds]
    # The longest jobs first, so the last worker is not left with one long job at the end.
    jobs.sort(key=lambda j: -j[1][3].steps_for(j[1][1]))
    outputs: dict[str, list[dict[str, Any]]] = {name: [] for name in chosen}
    for done, (name, output) in enumerate(_run_jobs(jobs, workers), start=1):
        outputs[name].append(output)
        if progress:
            progress(done, len(jobs))
    result = {name: summarise_set(regimes, outputs[name], budget) for name, (regimes, budget) in chosen.items()}
    claim = "heldout" if "heldout" in result else next(iter(result))
    return {"sets": result, "claim_set": claim,
            **{k: result[claim]["summary"][k] for k in ("planner_regret", "fixed_arm_regret", "planner_minus_fixed_arm")},
            "heldout_seed": draw_seed if "heldout" in result else None, "quick": quick,
            "seconds": round(time.perf_counter() - started, 1), "workers": workers, "cpu_count": os.cpu_count(),
            # CPU time the jobs used: on a busy shared machine wall time says more about the neighbours
            "job_cpu_seconds": round(sum(o["cpu_seconds"] for outs in outputs.values() for o in outs), 1),
            "load_average": os.getloadavg()}


def _run_jobs(jobs: list[tuple[str, tuple]], workers: int):
    """(set name, job output) as jobs finish, in worker processes when workers > 1."""
    if workers <= 1:
        for name, args in jobs:
            yield name, _job(args)
        return
    import multiprocessing
    from concurrent.futures import as_completed

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_job, args): name for name, args in jobs}
        for future in as_completed(futures):
            yield futures[future], future.result()


def summarise_set(regimes: tuple[Regime, ...], outputs: list[dict[str, Any]], budget: Budget) -> dict[str, Any]:
    """Per regime: arms' accuracies by seed, their differences and ties, the planner's choice and regret;
    then regret over the regimes (benchmarks/regret.py)."""
    rows, compared = [], []
    for regime in regimes:
        outs = sorted((o for o in outputs if o["regime"] == regime.name), key=lambda o: o["seed"])
        by_seed = {arm: [next(a["accuracy"] for a in o["arms"] if a["arm"] == arm) for o in outs] for arm in ARMS}
        drift = {arm: [next(a["drift"] for a in o["arms"] if a["arm"] == arm) for o in outs] for arm in ARMS}
        choices = [o["choice"] for o in outs]
        planner = [by_seed[c][i] if c in by_seed else UNTRAINED_ACCURACY for i, c in enumerate(choices)]
        c = regret.compare_arms(by_seed, planner)
        compared.append(c)
        rows.append({
            "name": regime.name, "regime": asdict(regime), "describe": regime.describe(),
            "steps": budget.steps_for(regime), "seeds": [o["seed"] for o in outs],
            "accuracy": c["mean"], "accuracy_by_seed": by_seed,
            "drift": {arm: sum(v) / len(v) for arm, v in drift.items()},
            "best": c["best"], "half_width": c["half_width"], "difference_from_best": c["difference_from_best"],
            "tied_or_best": c["tied_or_best"], "separated": c["separated"], "regret": c["regret"],
            "planner_choice": max(set(choices), key=choices.count), "planner_choice_by_seed": choices,
            "planner_accuracy": c["planner_mean"], "planner_regret": c["planner_regret"],
            "planner_tied_or_best": c["planner_tied_or_best"],
            "estimated_flip_rate": [o["estimated_flip_rate"] for o in outs],
            "noise_signal": [o["noise_signal"] for o in outs],
            # .get: job outputs written before thumbs had an estimate of their own lack these
            "estimated_thumb_flip_rate": [o.get("estimated_thumb_flip_rate") for o in outs],
            "thumb_noise_signal": [o.get("thumb_noise_signal") for o in outs],
            "robust_label_smoothing": [o["smoothing"] for o in outs],
            "planner_reasons": outs[0]["reasons"] if outs else [],
        })
    return {"regimes": rows, "summary": regret.summarise_regret(compared, ARMS), "budget": asdict(budget)}


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 1)))


__all__ = ["ARMS", "HELDOUT_SEED", "REGIMES", "TUNING_REGIMES", "Budget", "arm_of", "plan_for", "run",
           "summarise_set", "train_regime"]
