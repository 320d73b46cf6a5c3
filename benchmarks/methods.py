"""`alignloop bench methods`: which method wins on which feedback, against a known ground truth.

For each synthetic regime (benchmarks/regimes.py: clean pairs, pairs with 10/25/40 % flipped labels,
thumbs only at 1:5, 1:1 and 5:1 up:down, and a mix) every method is trained on the tiny offline
model with equal compute (the same steps, the same sequences a step) over several seeds, and scored
on held-out pairs whose better answer the hidden rule decides. Accuracy: the share of held-out pairs
whose better answer gets the higher implicit reward log pi(y|x) - log pi_ref(y|x). The planner's
choice for the regime's shape stands beside the best method; a gap within 2 points, or within the
seeds' spread, counts as a tie.

Arms: dpo, ipo, robust_dpo (label_smoothing = the shape's estimated flip rate) train on the pairs
plus the pairs built from thumbs; kto trains on the thumbs plus every pair as an up and a down answer.
Each arm reads its batches from a random sample of those rows a quarter larger than it can see in
its steps, as TRL's Trainer reads a dataset: seeded shuffled epochs, each row once an epoch (drawing
with replacement instead cost most arms 2-7 points; see `--trainer trl`). The losses are TRL's
(DPOTrainer's sigmoid, ipo and robust; KTOTrainer's kto with its detached KL baseline from
mismatched answers) in a compact full-weight loop: on a model this small the Trainer's own setup
would cost far more than the training. `--trainer trl` (benchmarks/methods_trl.py) runs TRL's own
trainers beside it on a subset of the regimes.
"""

from __future__ import annotations

import json
import math
import os
import random
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from alignloop.benchmarks.regimes import Regime, heldout_pairs
from alignloop.methods import benchmark_arms

# The arms each registered method names (alignloop.methods): robust_dpo is DPO's robust loss.
ARMS = benchmark_arms()
TIE_POINTS = 0.02


@dataclass(frozen=True)
class Budget:
    """Equal compute for every arm: steps, and sequences per step (a pair is two sequences)."""

    steps: int = 40
    pairs_per_step: int = 8
    learning_rate: float = 1e-3
    max_length: int = 48
    seeds: tuple[int, ...] = (0, 1, 2)
    heldout: int = 200


REGIMES: tuple[Regime, ...] = (
    Regime("clean_pairs", n_pairs=1500),
    Regime("pairs_flip10", n_pairs=1500, flip_rate=0.10),
    Regime("pairs_flip25", n_pairs=1500, flip_rate=0.25),
    Regime("pairs_flip40", n_pairs=1500, flip_rate=0.40),
    Regime("thumbs_1to5", n_thumb_prompts=100, up_share=1 / 6),
    Regime("thumbs_1to1", n_thumb_prompts=100, up_share=0.5),
    Regime("thumbs_5to1", n_thumb_prompts=100, up_share=5 / 6),
    Regime("mixed", n_pairs=600, flip_rate=0.10, n_thumb_prompts=100, up_share=0.5),
)
QUICK_REGIMES = (Regime("clean_pairs", n_pairs=96), Regime("thumbs_1to1", n_thumb_prompts=24, up_share=0.5))
QUICK_BUDGET = Budget(steps=6, pairs_per_step=4, seeds=(0, 1), heldout=48)


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
    """The benchmark arm a plan corresponds to."""
    if plan.method == "dpo" and plan.hyperparameters.get("loss_type") == ["robust"]:
        return "robust_dpo"
    return plan.method


# ---------------------------------------------------------------------------------------- training
def _training_rows(regime: Regime, seed: int, budget: Budget) -> tuple[list[dict], list[dict]]:
    """(pairs incl. pairs from thumbs, unpaired incl. pairs as up/down) in TRL's conversational format."""
    from alignloop.conversions import pairs_from_thumbs

    unpaired, pairs = regime.build(seed)
    all_pairs = pairs.to_pylist() + (pairs_from_thumbs(unpaired).to_pylist() if unpaired.num_rows else [])

    def said(text: str) -> list[dict[str, str]]:
        return [{"role": "assistant", "content": text}]

    pref = [{"prompt": r["prompt"], "chosen": said(r["chosen"]), "rejected": said(r["rejected"])} for r in all_pairs]
    unp = [{"prompt": r["prompt"], "completion": said(r["completion"]), "label": bool(r["label"])}
           for r in unpaired.to_pylist()]
    for r in pairs.to_pylist():
        unp += [{"prompt": r["prompt"], "completion": said(r["chosen"]), "label": True},
                {"prompt": r["prompt"], "completion": said(r["rejected"]), "label": False}]
    rng = random.Random(seed)
    rng.shuffle(pref)
    rng.shuffle(unp)
    # Each arm draws steps x pairs_per_step pairs (twice as many unpaired rows); a sample a quarter
    # larger than that is all it could see, and keeps tokenising and reference scoring cheap.
    return pref[: math.ceil(1.25 * budget.steps * budget.pairs_per_step)], \
        unp[: math.ceil(2.5 * budget.steps * budget.pairs_per_step)]


def _encode_all(tokenizer, prompts, answers, max_length: int):
    """Right-padded ids, attention and answer masks for (prompt, answer) rows, as evaluation encodes them."""
    import torch

    from alignloop.evaluation.scoring import encode_answer

    enc = [encode_answer(tokenizer, p, a, max_length)[0] for p, a in zip(prompts, answers, strict=True)]
    width = max(len(ids) for ids, _ in enc)
    ids = torch.full((len(enc), width), tokenizer.pad_token_id, dtype=torch.long)
    attn = torch.zeros((len(enc), width), dtype=torch.long)
    mask = torch.zeros((len(enc), width), dtype=torch.bool)
    for row, (seq, start) in enumerate(enc):
        ids[row, : len(seq)] = torch.tensor(seq)
        attn[row, : len(seq)] = 1
        mask[row, start: len(seq)] = True
    return ids, attn, mask


def _logps(model, ids, attn, mask, rows=None, average: bool = False):
    """Summed (or per-token mean) log-probability of each row's answer tokens."""
    import torch

    if rows is not None:
        ids, attn, mask = ids[rows], attn[rows], mask[rows]
    logits = model(input_ids=ids, attention_mask=attn).logits.float()
    token = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    m = mask[:, 1:]
    total = (token * m).sum(-1)
    return total / m.sum(-1).clamp(min=1) if average else total


def _dpo_loss(arm: str, pol_c, pol_r, ref_c, ref_r, beta: float, smoothing: float):
    """TRL's DPOTrainer losses: sigmoid (DPO), ipo (on per-token mean log-probs), robust (cDPO)."""
    import torch.nn.functional as F

    logits = (pol_c - ref_c) - (pol_r - ref_r)
    if arm == "ipo":
        return ((logits - 1 / (2 * beta)) ** 2).mean()
    if arm == "robust_dpo":
        return ((-F.logsigmoid(beta * logits) * (1 - smoothing) + F.logsigmoid(-beta * logits) * smoothing)
                / (1 - 2 * smoothing)).mean()
    return (-F.logsigmoid(beta * logits)).mean()


def _kto_loss(pol, ref, labels, kl, beta: float, dw: float, uw: float):
    """TRL's KTOTrainer loss: 1 - sigmoid(beta (r - z)) for desirable rows, 1 - sigmoid(beta (z - r)) for
    undesirable, z the batch's detached KL estimate (mismatched prompt/answer pairs), clamped at 0."""
    import torch

    ratio = pol - ref
    losses = torch.where(labels, dw * (1 - torch.sigmoid(beta * (ratio - kl))),
                         uw * (1 - torch.sigmoid(beta * (kl - ratio))))
    return losses.mean()


def train_regime(base_dir: str, regime: Regime, seed: int, budget: Budget, smoothing: float) -> list[dict[str, Any]]:
    """Every arm on one regime and seed, from the same base model, rows and reference log-probs."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alignloop.planner import DEFAULT_BETA, kto_weights

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    pref, unp = _training_rows(regime, seed, budget)
    held = heldout_pairs(budget.heldout, seed)
    said = [r["prompt"] for r in pref]
    pc = _encode_all(tokenizer, said, [r["chosen"][0]["content"] for r in pref], budget.max_length)
    pr = _encode_all(tokenizer, said, [r["rejected"][0]["content"] for r in pref], budget.max_length)
    uu = _encode_all(tokenizer, [r["prompt"] for r in unp], [r["completion"][0]["content"] for r in unp],
                     budget.max_length)
    labels = torch.tensor([r["label"] for r in unp])
    n_up = int(labels.sum())
    dw, uw = kto_weights(n_up, len(unp) - n_up)
    hc = _encode_all(tokenizer, [p for p, _, _ in held], [c for _, c, _ in held], budget.max_length)
    hr = _encode_all(tokenizer, [p for p, _, _ in held], [r for _, _, r in held], budget.max_length)
    ref = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    with torch.no_grad():
        ref_c, ref_r, ref_u = _logps(ref, *pc), _logps(ref, *pr), _logps(ref, *uu)
        ref_c_avg, ref_r_avg = _logps(ref, *pc, average=True), _logps(ref, *pr, average=True)
        ref_hc, ref_hr = _logps(ref, *hc), _logps(ref, *hr)
    out = []
    for arm in ARMS:
        started = time.perf_counter()
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(base_dir).train()
        opt = torch.optim.AdamW(model.parameters(), lr=budget.learning_rate)
        gen = torch.Generator().manual_seed(seed)
        read = _epochs(len(unp) if arm == "kto" else len(pref), gen)
        for _ in range(budget.steps):
            if arm == "kto":
                # As many sequences a step as a pair arm: 2 x pairs_per_step rows (the KL pass is extra, no grad).
                rows = read(2 * budget.pairs_per_step)
                batch = (uu[0][rows], uu[1][rows], uu[2][rows])
                with torch.no_grad():
                    shifted = torch.roll(rows, 1)
                    kl_ids = _mismatch(uu, rows, shifted, tokenizer.pad_token_id)
                    kl = (_logps(model, *kl_ids) - _logps(ref, *kl_ids)).mean().clamp(min=0)
                loss = _kto_loss(_logps(model, *batch), ref_u[rows], labels[rows], kl, DEFAULT_BETA["kto"], dw, uw)
            else:
                rows = read(budget.pairs_per_step)
                average = arm == "ipo"
                beta = DEFAULT_BETA["ipo" if arm == "ipo" else "dpo"]
                rc, rr = (ref_c_avg, ref_r_avg) if average else (ref_c, ref_r)
                loss = _dpo_loss(arm, _logps(model, *pc, rows=rows, average=average),
                                 _logps(model, *pr, rows=rows, average=average), rc[rows], rr[rows], beta, smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            margins = (_logps(model, *hc) - ref_hc) - (_logps(model, *hr) - ref_hr)
        accuracy = float(((margins > 0).float() + 0.5 * (margins == 0).float()).mean())
        out.append({"regime": regime.name, "seed": seed, "arm": arm, "accuracy": accuracy,
                    "final_loss": float(loss.detach()), "seconds": time.perf_counter() - started})
    return out


def _epochs(n: int, generator):
    """A reader of `k` row indices at a time from seeded shuffled epochs of n rows (TRL's Trainer's order)."""
    import torch

    pending: list[int] = []

    def read(k: int):
        while len(pending) < k:
            pending.extend(torch.randperm(n, generator=generator).tolist())
        batch = pending[:k]
        del pending[:k]
        return torch.tensor(batch)

    return read


def _mismatch(encoded, rows, answers_from, pad_id: int):
    """KTO's KL rows: each prompt with another row's answer (TRL pairs a batch with itself shifted by one)."""
    import torch

    ids, attn, mask = encoded
    out_ids, out_mask = [], []
    for i, j in zip(rows.tolist(), answers_from.tolist(), strict=True):
        p_end = int(mask[i].nonzero()[0]) if mask[i].any() else int(attn[i].sum())
        a = mask[j].nonzero().flatten()
        seq = torch.cat([ids[i, :p_end], ids[j, a]])
        out_ids.append(seq)
        out_mask.append(torch.cat([torch.zeros(p_end, dtype=torch.bool), torch.ones(len(a), dtype=torch.bool)]))
    width = max(len(s) for s in out_ids)
    ids_t = torch.full((len(out_ids), width), pad_id, dtype=torch.long)
    attn_t = torch.zeros((len(out_ids), width), dtype=torch.long)
    mask_t = torch.zeros((len(out_ids), width), dtype=torch.bool)
    for k, (s, m) in enumerate(zip(out_ids, out_mask, strict=True)):
        ids_t[k, : len(s)] = s
        attn_t[k, : len(s)] = 1
        mask_t[k, : len(m)] = m
    return ids_t, attn_t, mask_t


def _job(args: tuple) -> list[dict[str, Any]]:
    return train_regime(*args)


# ---------------------------------------------------------------------------------------- the run
def run(workdir: Path, *, quick: bool = False, workers: int = 1, progress=None) -> dict[str, Any]:
    """Every arm on every regime and seed; returns the table behind the JSON and BENCHMARKS.md."""
    from alignloop.models import build_tiny_model

    regimes, budget = (QUICK_REGIMES, QUICK_BUDGET) if quick else (REGIMES, Budget())
    workdir.mkdir(parents=True, exist_ok=True)
    base_dir = workdir / "tiny-model"
    if not (base_dir / "config.json").exists():
        build_tiny_model(base_dir, seed=0)
    started = time.perf_counter()
    plans, jobs = {}, []
    for regime in regimes:
        shape, plan = plan_for(regime, budget.seeds[0])
        smoothing = min(shape.pair_flip_rate or 0.0, 0.4)
        plans[regime.name] = (shape, plan, smoothing)
        jobs += [(str(base_dir), regime, seed, budget, smoothing) for seed in budget.seeds]
    results = []
    if workers > 1:
        import multiprocessing

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for r in pool.map(_job, jobs):
                results += r
                if progress:
                    progress(len(results), len(jobs))
    else:
        for job in jobs:
            results += _job(job)
            if progress:
                progress(len(results), len(jobs))
    return summarise(regimes, plans, results, budget, time.perf_counter() - started, quick)


def summarise(regimes, plans, results, budget: Budget, seconds: float, quick: bool) -> dict[str, Any]:
    out = []
    for regime in regimes:
        shape, plan, smoothing = plans[regime.name]
        by_arm = {arm: [r["accuracy"] for r in results if r["regime"] == regime.name and r["arm"] == arm]
                  for arm in ARMS}
        mean = {arm: statistics.fmean(v) for arm, v in by_arm.items()}
        spread = {arm: (statistics.stdev(v) if len(v) > 1 else 0.0) for arm, v in by_arm.items()}
        best = max(mean, key=mean.get)
        choice = arm_of(plan)
        gap = mean[best] - mean[choice] if choice in mean else None
        tie_margin = max(TIE_POINTS, spread[best], spread.get(choice, 0.0))
        out.append({
            "name": regime.name,
            "accuracy": {arm: round(mean[arm], 4) for arm in ARMS},
            "accuracy_by_seed": {arm: [round(a, 4) for a in by_arm[arm]] for arm in ARMS},
            "spread": {arm: round(spread[arm], 4) for arm in ARMS},
            "best": best,
            "planner_choice": choice,
            "planner_gap": None if gap is None else round(gap, 4),
            "planner_within_2_points": gap is not None and gap <= TIE_POINTS,
            "planner_ok": gap is not None and gap <= tie_margin,
            "estimated_flip_rate": shape.pair_flip_rate,
            "noise_signal": None if shape.pair_noise is None else shape.pair_noise.signal,
            "robust_label_smoothing": smoothing,
            "true_flip_rate": regime.flip_rate,
            "planner_reasons": list(plan.reasons),
        })
    ok = sum(r["planner_ok"] for r in out)
    return {"regimes": out, "planner_ok": ok, "n_regimes": len(out), "planner_ok_share": round(ok / len(out), 4),
            "budget": asdict(budget), "quick": quick, "seconds": round(seconds, 1), "cpu_count": os.cpu_count()}


# ---------------------------------------------------------------------------------------- output
def table_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for r in result["regimes"]:
        cells = [r["name"]]
        for arm in ARMS:
            mark = " *" if arm == r["best"] else ""
            cells.append(f"{r['accuracy'][arm]:.3f} ± {r['spread'][arm]:.3f}{mark}")
        cells += [r["planner_choice"], "—" if r["planner_gap"] is None else f"{100 * r['planner_gap']:.1f}",
                  "yes" if r["planner_ok"] else "no"]
        rows.append(cells)
    return rows


TABLE_HEADER = ["regime", *ARMS, "planner", "gap (points)", "tie or best"]


def markdown_table(result: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(result)]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> Path:
    """Grouped bars: accuracy per arm per regime, seed spread as error bars, the planner's arm outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regimes = result["regimes"]
    width = 0.8 / len(ARMS)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(regimes)), 4))
    for j, arm in enumerate(ARMS):
        xs = [i + (j - (len(ARMS) - 1) / 2) * width for i in range(len(regimes))]
        bars = ax.bar(xs, [r["accuracy"][arm] for r in regimes], width, yerr=[r["spread"][arm] for r in regimes],
                      label=arm, capsize=2)
        for bar, r in zip(bars, regimes, strict=True):
            if r["planner_choice"] == arm:
                bar.set_edgecolor("black")
                bar.set_linewidth(2)
    ax.set_xticks(range(len(regimes)), [r["name"] for r in regimes], rotation=20)
    ax.set_ylabel("held-out accuracy vs ground truth")
    ax.set_ylim(0.3, 1.0)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_title("alignloop bench methods (outlined: the planner's choice)")
    ax.legend(ncol=len(ARMS), fontsize=8, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "methods.json"
    json_path.write_text(json.dumps(result, indent=2))
    return json_path, plot(result, out_dir / "methods.png")


def public_json(result: dict[str, Any]) -> dict[str, Any]:
    """What `--json` prints: the documented keys first, the rest after."""
    return {"regimes": [{"name": r["name"], "accuracy": r["accuracy"], "planner_choice": r["planner_choice"],
                         "spread": r["spread"], **{k: v for k, v in r.items()
                                                   if k not in ("name", "accuracy", "planner_choice", "spread")}}
                        for r in result["regimes"]],
            **{k: v for k, v in result.items() if k != "regimes"}}


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 1)))


__all__ = ["ARMS", "REGIMES", "Budget", "arm_of", "markdown_table", "plan_for", "public_json", "run", "save",
           "train_regime"]


# ---------------------------------------------------------------------------------- noise calibration
CALIBRATION = ((2000, (0.0, 0.05, 0.10, 0.15, 0.25, 0.40)), (400, (0.10, 0.25)))


def noise_calibration(seeds: tuple[int, ...] = (1, 2)) -> list[dict[str, Any]]:
    """The reward-model flip-rate estimate on synthetic pairs with known flips (no comparison repeated)."""
    from alignloop.profile.reward_model import estimate_from_table
    from alignloop.benchmarks.regimes import synthetic_pairs

    rows = []
    for n, rates in CALIBRATION:
        for rate in rates:
            for seed in seeds:
                pairs, flipped = synthetic_pairs(n, rate, seed)
                started = time.perf_counter()
                est = estimate_from_table(pairs)
                truth = flipped / n
                rows.append({"pairs": n, "injected": rate, "true_share": round(truth, 4), "seed": seed,
                             "estimate": est.flip_rate, "low": est.low, "high": est.high, "acted_on": est.enough,
                             "covered": est.flip_rate is not None and est.low <= truth <= est.high,
                             "detail": est.detail, "seconds": round(time.perf_counter() - started, 1)})
    return rows
