"""`alignloop bench methods --trainer trl`: the methods benchmark's compact loop checked against TRL's own
trainers.

`bench methods` trains every arm with TRL's loss formulas in a compact loop (benchmarks/methods.py).
This cross-check trains the same arms with TRL's real `DPOTrainer` (loss_type sigmoid, ipo, and
robust with label_smoothing) and `KTOTrainer`, on a subset of the regimes and fewer seeds, with the
same rows, steps, batch, learning rate, β and weights, and scores both on the same held-out pairs, so
the two implementations' accuracies and rankings stand side by side. Optimizer settings are matched
to the compact loop's: AdamW at a constant rate, weight decay 0.01, no gradient clipping, no warm-up.
"""

from __future__ import annotations

import multiprocessing
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from alignloop.benchmarks.compact_loop import ARMS, Budget, _encode_all, _logps, _training_rows, train_regime
from alignloop.benchmarks.methods import plan_for, smoothing_of
from alignloop.benchmarks.regimes import Regime, heldout_pairs
from alignloop.benchmarks.regret import compare_arms

CROSS_CHECK_REGIMES: tuple[Regime, ...] = (
    Regime("clean_pairs", n_pairs=1500),
    Regime("pairs_flip25", n_pairs=1500, flip_rate=0.25),
    Regime("thumbs_1to1", n_thumb_prompts=100, up_share=0.5),
)
CROSS_CHECK_BUDGET = Budget(steps=40, seeds=(0, 1))
IMPLEMENTATIONS = ("compact", "trl")
DPO_LOSS = {"dpo": "sigmoid", "ipo": "ipo", "robust_dpo": "robust"}


def _config_kwargs(budget: Budget, steps: int, out_dir: str, seed: int, batch: int) -> dict[str, Any]:
    """TrainingArguments matching the compact loop's AdamW(lr) steps."""
    return dict(output_dir=out_dir, max_steps=steps, per_device_train_batch_size=batch,
                learning_rate=budget.learning_rate, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.01,
                max_grad_norm=0.0, max_length=budget.max_length, seed=seed, data_seed=seed, use_cpu=True, bf16=False,
                gradient_checkpointing=False, report_to=[], save_strategy="no", logging_steps=1, disable_tqdm=True,
                dataset_num_proc=None)


def build_trainer(arm: str, base_dir: str, pref: list[dict], unp: list[dict], budget: Budget, steps: int, seed: int,
                  smoothing: float, out_dir: str):
    """TRL's own trainer for one arm, with the compact loop's data and settings."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer

    from alignloop.models import load_tokenizer
    from alignloop.planner import DEFAULT_BETA, kto_weights

    tokenizer = load_tokenizer(Path(base_dir))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    ref = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    if arm == "kto":
        n_up = sum(r["label"] for r in unp)
        dw, uw = kto_weights(n_up, len(unp) - n_up)
        # As many sequences a step as a pair arm: 2 x pairs_per_step rows. KTO's sampler reads in order;
        # the rows are already shuffled.
        args = KTOConfig(beta=DEFAULT_BETA["kto"], desirable_weight=dw, undesirable_weight=uw,
                         **_config_kwargs(budget, steps, out_dir, seed, 2 * budget.pairs_per_step))
        return KTOTrainer(model=model, ref_model=ref, args=args, train_dataset=Dataset.from_list(unp),
                          processing_class=tokenizer)
    args = DPOConfig(loss_type=[DPO_LOSS[arm]], beta=DEFAULT_BETA["ipo" if arm == "ipo" else "dpo"],
                     label_smoothing=smoothing if arm == "robust_dpo" else 0.0,
                     **_config_kwargs(budget, steps, out_dir, seed, budget.pairs_per_step))
    return DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=Dataset.from_list(pref),
                      processing_class=tokenizer)


def train_regime_trl(base_dir: str, regime: Regime, seed: int, budget: Budget, smoothing: float,
                     arms: tuple[str, ...] = ARMS) -> list[dict[str, Any]]:
    """Every arm on one regime and seed through TRL's trainers, scored as the compact loop scores."""
    import torch
    from transformers import AutoModelForCausalLM, PrinterCallback

    from alignloop.models import load_tokenizer

    torch.set_num_threads(1)
    tokenizer = load_tokenizer(Path(base_dir))
    pref, unp = _training_rows(regime, seed, budget)
    held = heldout_pairs(budget.heldout, seed)
    hc = _encode_all(tokenizer, [p for p, _, _ in held], [c for _, c, _ in held], budget.max_length)
    hr = _encode_all(tokenizer, [p for p, _, _ in held], [r for _, _, r in held], budget.max_length)
    ref = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    with torch.no_grad():
        ref_hc, ref_hr = _logps(ref, *hc), _logps(ref, *hr)
    out = []
    for arm in arms:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="bench-trl-") as tmp:
            trainer = build_trainer(arm, base_dir, pref, unp, budget, budget.steps_for(regime), seed, smoothing, tmp)
            trainer.remove_callback(PrinterCallback)    # its log lines would interleave with `--json`
            trainer.train()
        model = trainer.model.eval()
        with torch.no_grad():
            margins = (_logps(model, *hc) - ref_hc) - (_logps(model, *hr) - ref_hr)
        accuracy = float(((margins > 0).float() + 0.5 * (margins == 0).float()).mean())
        cls = type(trainer)
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        out.append({"regime": regime.name, "seed": seed, "arm": arm, "implementation": "trl",
                    "accuracy": accuracy, "trainer": f"{cls.__module__}.{cls.__qualname__}",
                    "loss_type": trainer.args.loss_type, "label_smoothing": getattr(trainer.args, "label_smoothing", None),
                    "steps": trainer.state.global_step, "final_loss": losses[-1] if losses else None,
                    "seconds": time.perf_counter() - started})
    return out


def _job(args: tuple) -> list[dict[str, Any]]:
    implementation, *rest = args
    if implementation == "trl":
        return train_regime_trl(*rest)
    return [{**r, "implementation": "compact"} for r in train_regime(*rest)]


def run_cross_check(workdir: Path, *, regimes: tuple[Regime, ...] = CROSS_CHECK_REGIMES,
                    budget: Budget = CROSS_CHECK_BUDGET, workers: int = 1, progress=None) -> dict[str, Any]:
    """Both implementations on each regime and seed, in one run; the table behind BENCHMARKS.md's cross-check."""
    from alignloop.models import build_tiny_model

    workdir.mkdir(parents=True, exist_ok=True)
    base_dir = workdir / "tiny-model"
    if not (base_dir / "config.json").exists():
        build_tiny_model(base_dir, seed=0)
    jobs, plans = [], {}
    for regime in regimes:
        shape, plan = plan_for(regime, budget.seeds[0])
        smoothing = smoothing_of(shape)
        plans[regime.name] = (plan, smoothing)
        jobs += [(impl, str(base_dir), regime, seed, budget, smoothing) for seed in budget.seeds
                 for impl in IMPLEMENTATIONS]
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    done = 0
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for r in pool.map(_job, jobs):
                results += r
                done += 1
                if progress:
                    progress(done, len(jobs))
    else:
        for job in jobs:
            results += _job(job)
            done += 1
            if progress:
                progress(done, len(jobs))
    return summarise_cross_check(regimes, plans, results, budget, time.perf_counter() - started)


def _tied_or_best(arm: str, by_seed: dict[str, list[float]]) -> bool:
    """Tied with the best or best, by the methods benchmark's rule (benchmarks/regret.py)."""
    return compare_arms(by_seed)["tied_or_best"][arm]


def summarise_cross_check(regimes, plans, results, budget: Budget, seconds: float) -> dict[str, Any]:
    import os
    from dataclasses import asdict

    from alignloop.benchmarks.methods import arm_of

    out = []
    for regime in regimes:
        plan, smoothing = plans[regime.name]
        mean, spread, by_seed, ranking, raw = {}, {}, {}, {}, {}
        for impl in IMPLEMENTATIONS:
            acc = {arm: [r["accuracy"] for r in results if r["regime"] == regime.name and r["arm"] == arm
                         and r["implementation"] == impl] for arm in ARMS}
            raw[impl] = acc
            by_seed[impl] = {arm: [round(a, 4) for a in v] for arm, v in acc.items()}
            mean[impl] = {arm: statistics.fmean(v) for arm, v in acc.items()}
            spread[impl] = {arm: statistics.stdev(v) if len(v) > 1 else 0.0 for arm, v in acc.items()}
            ranking[impl] = sorted(ARMS, key=lambda a, m=mean[impl]: -m[a])
        best = {impl: ranking[impl][0] for impl in IMPLEMENTATIONS}
        choice = arm_of(plan)
        out.append({
            "name": regime.name,
            "accuracy": {impl: {a: round(v, 4) for a, v in mean[impl].items()} for impl in IMPLEMENTATIONS},
            "spread": {impl: {a: round(v, 4) for a, v in spread[impl].items()} for impl in IMPLEMENTATIONS},
            "accuracy_by_seed": by_seed,
            "difference_trl_minus_compact": {a: round(mean["trl"][a] - mean["compact"][a], 4) for a in ARMS},
            "ranking": ranking,
            "best": best,
            "same_best": best["compact"] == best["trl"],
            # Does each implementation's winner tie or beat the rest under the other one?
            "winners_agree": (_tied_or_best(best["compact"], raw["trl"])
                              and _tied_or_best(best["trl"], raw["compact"])),
            "planner_choice": choice,
            "planner_tied_or_best": {impl: choice in raw[impl] and _tied_or_best(choice, raw[impl])
                                     for impl in IMPLEMENTATIONS},
            "robust_label_smoothing": smoothing,
        })
    trainers = sorted({r["trainer"] for r in results if r["implementation"] == "trl"})
    secs = {impl: round(sum(r["seconds"] for r in results if r["implementation"] == impl), 1)
            for impl in IMPLEMENTATIONS}
    return {"mode": "trl cross-check", "regimes": out, "trainers": trainers, "budget": asdict(budget),
            "seconds": round(seconds, 1), "training_seconds": secs, "cpu_count": os.cpu_count(),
            "winners_agree": sum(r["winners_agree"] for r in out), "n_regimes": len(out)}


CROSS_CHECK_HEADER = ["regime", "arm", "compact loop", "TRL trainer", "TRL − compact (points)"]


def cross_check_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for r in result["regimes"]:
        for arm in ARMS:
            marks = {impl: " *" if r["best"][impl] == arm else "" for impl in IMPLEMENTATIONS}
            rows.append([r["name"], arm,
                         *[f"{r['accuracy'][impl][arm]:.3f} ± {r['spread'][impl][arm]:.3f}{marks[impl]}"
                           for impl in IMPLEMENTATIONS],
                         f"{100 * r['difference_trl_minus_compact'][arm]:+.1f}"])
    return rows


def cross_check_markdown(result: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(CROSS_CHECK_HEADER) + " |", "|" + "---|" * len(CROSS_CHECK_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in cross_check_rows(result)]
    return "\n".join(lines)
