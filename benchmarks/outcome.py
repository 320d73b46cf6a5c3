"""`alignloop bench outcome`: what alignloop's default settings gain on real human feedback.

The train split of real preference data (benchmarks/outcome_data.py: hh-helpful transcripts and
QA-Feedback votes, split by prompt) is measured and planned as `alignloop plan` does it, trained with
alignloop's training code, and evaluated with its evaluation code on prompts training never saw:

- arms: DPO, IPO and KTO (each pair split into an up and a down answer) as `training.method` forces them,
  and the planner's own choice (`method: auto`); every other setting is the default unless asked;
- per arm: held-out preference accuracy of the reference and the candidate with 95 % cluster-bootstrap
  intervals (prompt = cluster), the gain (candidate − reference, paired), the implicit-reward accuracy,
  KL from the reference on sampled answers, the judged win rate of its own answers against the
  reference's (the probe judge, cross-fitted on the evaluated pairs, with its own held-out accuracy),
  and wall time.

`split="validation"` evaluates on validation prompts instead: the defaults are fitted there, and the
test split is read once, with them. Each run appends a record to a JSON log (command, settings,
split, results with intervals and n).
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from alignloop.errors import DataError
from alignloop.benchmarks.outcome_data import (
    default_data_dir,
    read_sources,
    sample_pairs,
    split_pairs,
)

ARMS = ("dpo", "ipo", "kto", "planner")
# A full run: training pairs and evaluation pairs, whole prompts at a time (hash-chosen).
FULL_TRAIN_PAIRS, FULL_EVAL_PAIRS = 800, 500
# --quick: the same path on the tiny offline model and a small sample.
QUICK_TRAIN_PAIRS, QUICK_EVAL_PAIRS, QUICK_MAX_LENGTH_CAP = 40, 24, 128
# Held-out prompts the models answer themselves, for the judged win rate, KL (sampled answers) and length
# drift: as many as the gate's promotion.min_prompts asks for a decision.
GENERATION_PROMPTS = 32


@dataclass(frozen=True)
class OutcomeSetup:
    """What one run of the benchmark compares, on what."""

    base_model: dict[str, Any] = field(default_factory=lambda: {"packaged": "smollm2-135m-instruct"})
    split: str = "test"
    arms: tuple[str, ...] = ARMS
    train_pairs: int | None = FULL_TRAIN_PAIRS
    eval_pairs: int | None = FULL_EVAL_PAIRS
    training: dict[str, Any] = field(default_factory=dict)   # TrainingSettings a user would set (none: defaults)
    generation_prompts: int = GENERATION_PROMPTS
    data_dir: Path | None = None
    cache_dir: Path | None = None                            # models, tokens, reference scores

    @classmethod
    def quick(cls, **kw: Any) -> OutcomeSetup:
        """The tiny model on a small sample. Its own tokenizer cuts real text into many more tokens, so the
        lengths are capped lower (max_length is still chosen from them, as in a full run)."""
        training = {"max_length_cap": QUICK_MAX_LENGTH_CAP, **kw.pop("training", {})}
        return cls(**{"base_model": {"tiny": True}, "train_pairs": QUICK_TRAIN_PAIRS, "eval_pairs": QUICK_EVAL_PAIRS,
                      "generation_prompts": 2, "training": training, **kw})


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "alignloop" / "bench-outcome"


def load_rows(setup: OutcomeSetup) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """(training pairs, evaluated pairs, what was read): the split's pairs, sampled by whole prompts."""
    if setup.split not in ("validation", "test"):
        raise ValueError(f"split: {setup.split!r} is not validation or test")
    sources = read_sources(setup.data_dir or default_data_dir())
    by_split = split_pairs(sources)
    train = sample_pairs(by_split["train"], setup.train_pairs, salt="train")
    evaluated = sample_pairs(by_split[setup.split], setup.eval_pairs, salt="eval")
    data = {"sources": [{"name": s.name, "rows_read": s.rows_read, "pairs": len(s.pairs), "ties": s.ties,
                         "left_out": dict(s.left_out)} for s in sources],
            "split_pairs": {k: len(v) for k, v in by_split.items()},
            "train_pairs": len(train), "evaluated_split": setup.split, "evaluated_pairs_sampled": len(evaluated)}
    return train, evaluated, data


def canonical_pairs(rows: list[dict[str, Any]]):
    """The rows as the store's canonical pairs table (what the planner measures), oldest first."""
    import hashlib
    from datetime import timedelta

    import pyarrow as pa

    from alignloop.schema import PAIRS_SCHEMA

    start = datetime(2025, 1, 1)
    return pa.Table.from_pylist([{
        "event_id": hashlib.sha256(json.dumps([r["prompt"], r["chosen"], r["rejected"]]).encode()).hexdigest()[:32],
        "source": r.get("source", "bench"), "ts": start + timedelta(seconds=i), "user_id": None,
        "model_version": None, "prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"],
        "ts_observed": False} for i, r in enumerate(rows)], schema=PAIRS_SCHEMA)


def measure_train(rows: list[dict[str, Any]], tokenizer, training) -> Any:
    """The training rows' data profile, as `alignloop plan` measures a snapshot (all of them on the training side)."""
    import pyarrow as pa

    from alignloop.profile.measure import measure_profile
    from alignloop.schema import UNPAIRED_SCHEMA

    return measure_profile(pa.Table.from_pylist([], schema=UNPAIRED_SCHEMA), canonical_pairs(rows), 0.0,
                           max_length=training.max_length, max_length_cap=training.max_length_cap, tokenizer=tokenizer)


def arm_plan(arm: str, profile, setup: OutcomeSetup):
    """The plan `alignloop plan` makes for this arm: training.method forced to the arm, or auto for the planner."""
    from alignloop.config import PlanningSettings, TrainingSettings
    from alignloop.planner import Plan, choose_method

    method = "auto" if arm == "planner" else arm
    training = TrainingSettings(**{**setup.training, "method": method})
    plan = choose_method(profile, training, PlanningSettings())
    return Plan(plan.method, {**plan.hyperparameters, "max_length_cap": training.max_length_cap}, plan.reasons,
                plan.shape)


def same_training(a, b) -> bool:
    """Two plans that train the same candidate (reasons aside)."""
    return a.method == b.method and a.hyperparameters == b.hyperparameters


def train_arm(plan, train_rows: list[dict[str, Any]], base_dir: Path, run_dir: Path, cache_dir: Path,
              say: Progress | None = None, arm: str = "", precision: str = "auto"):
    """The candidate of one arm, trained by alignloop's training code (no resume: every run starts fresh) in
    `precision` (training.precision as a run's settings give it: auto trains in bfloat16 where it is native).
    say: told after the first step (what loading, the reference pass and that step took), after the second with
    the time to go at the second step's pace, then every 10th and the last at the pace since the first step ended,
    so a long run shows it is moving and how long it will take."""
    from alignloop.datasets import Split
    from alignloop.training import RunOptions, train_candidate
    from alignloop.training.common import format_seconds

    rows = [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in train_rows]
    options = RunOptions(device="cpu", log_every=10, resume=False, cache_dir=cache_dir / "training",
                         precision=precision)
    # A progress function (even one that shows nothing) keeps transformers from printing every step to stdout,
    # where --json writes; the log lines every 10 steps go to stderr.
    started = time.perf_counter()

    # When the first step ended: paces are read from there. The first step's own line has no time to go: it
    # includes loading and the reference log-probs (minutes on a CPU), which no later step repeats.
    first: list[float] = []

    def progress(step: int, total: int, logs: dict | None) -> None:
        if not say or not step:
            return
        now = time.perf_counter()
        if not first:
            first.append(now)
        if step <= 2 or step % 10 == 0 or step == total:
            loss = f", loss {logs['loss']:.3f}" if logs and isinstance(logs.get("loss"), float) else ""
            if step == total:
                to_go = ""
            elif step == 1:
                to_go = " (loading, reference log-probs and the first step)"
            else:
                to_go = f", about {format_seconds((total - step) * (now - first[0]) / (step - 1))} to go"
            say(f"{arm}: step {step}/{total}{loss}, {now - started:.0f} s{to_go}")

    return train_candidate(plan, Split([], rows, [], []), base_dir, run_dir, device="cpu", options=options,
                           progress=progress)


def gain_text(row: dict[str, Any], scale: float = 1.0, digits: int = 3) -> str:
    """'+0.020 [+0.003, +0.041]', or the gain and why it has no interval (too few prompts for the bootstrap)."""
    gain = f"{scale * row['gain']:+.{digits}f}"
    low, high = row["gain_ci_low"], row["gain_ci_high"]
    if low != low or high != high:   # NaN: the bootstrap refused the set
        return f"{gain} (no interval: {row['prompts']} prompts, too few)"
    return f"{gain} [{scale * low:+.{digits}f}, {scale * high:+.{digits}f}]"


def evaluate_arm(trained, eval_pairs, base_dir: Path, beta: float, setup: OutcomeSetup, cache_dir: Path,
                 trained_on: frozenset[str] = frozenset()):
    """alignloop's evaluation of the candidate on the evaluated split's pairs, at the length it was trained at,
    judged by the probe (never fitted on `trained_on`, the training prompts' keys)."""
    from alignloop.evaluation.candidate import EvalOptions, evaluate_candidate
    from alignloop.evaluation.probe import ProbeJudge

    options = EvalOptions(max_length=trained.max_length, generation_prompts=setup.generation_prompts,
                          cache_dir=cache_dir / "eval", ppl_text=None)
    return evaluate_candidate(trained.model_dir, base_dir, eval_pairs, beta=beta, options=options, device="cpu",
                              judge=ProbeJudge(training_prompt_keys=trained_on))


def cpu_seconds() -> float:
    """CPU seconds this process has used (all its threads): on a shared machine, the work done."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def arm_row(arm: str, plan, trained, report, train_s: float, eval_s: float, cpu_s: float) -> dict[str, Any]:
    """One arm's line of the result: what it trained, and what the evaluation found (with intervals and n)."""
    hp = trained.hyperparameters

    def iv(x) -> dict[str, float] | None:
        return None if x is None else {"value": x.value, "ci_low": x.low, "ci_high": x.high}

    steps = hp["max_steps"]
    return {
        "arm": arm, "method": plan.method, "loss_type": hp.get("loss_type"), "train_on": hp.get("train_on"),
        "pairs": report.n_pairs, "prompts": report.n_prompts, "train_rows": trained.n_train,
        "steps": steps, "batch": hp["per_device_batch_size"], "learning_rate": hp["learning_rate"],
        "beta": hp["beta"], "max_length": trained.max_length, "precision": trained.precision,
        "eval_precision": report.precision,
        "reference_accuracy": iv(report.pref_accuracy_reference),
        "candidate_accuracy": iv(report.pref_accuracy_candidate),
        "gain": report.delta.value, "gain_ci_low": report.delta.low, "gain_ci_high": report.delta.high,
        "reward_accuracy": report.reward_accuracy, "reward_margin": report.reward_margin,
        "kl": iv(report.kl_reference), "length_ratio": iv(report.length_ratio),
        "win_rate": iv(report.win_rate) if report.judge is not None and report.judge.usable else None,
        "judge_accuracy": report.judge.accuracy if report.judge is not None else None,
        "judge_accuracy_ci": ([report.judge.accuracy_ci_low, report.judge.accuracy_ci_high]
                              if report.judge is not None else None),
        "judged_prompts": report.generation_prompts, "max_new_tokens": report.max_new_tokens,
        # The gate's degenerate-answer check: the share of greedy answers empty, repeating or cut off.
        "degenerate_rate": report.degenerate_rate, "degenerate_rate_reference": report.degenerate_rate_reference,
        "degenerate_delta": iv(report.degenerate_delta),
        "truncated_pairs": report.truncated_pairs,
        "train_seconds": train_s, "eval_seconds": eval_s, "seconds": train_s + eval_s, "cpu_seconds": cpu_s,
        "seconds_per_step": trained.runtime_s / max(steps, 1),
        "eval_set_hash": report.eval_set_hash, "reasons": list(plan.reasons),
    }


Progress = Callable[[str], None]


def run_outcome(setup: OutcomeSetup, work_dir: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Every arm of `setup`: plan, train, evaluate; the planner's arm reuses an arm whose plan is the same."""
    from alignloop.config import BaseModelSettings, TrainingSettings
    from alignloop.datasets import majority_pairs
    from alignloop.models import load_tokenizer, resolve_base_model
    from alignloop.schema import prompt_key

    say = progress or (lambda _msg: None)
    started, commit = time.perf_counter(), git_commit()   # the code that runs: HEAD may move during a long run
    cache_dir = setup.cache_dir or default_cache_dir()
    base_dir = resolve_base_model(BaseModelSettings(**setup.base_model), cache_dir / "models")
    train_rows, eval_rows, data = load_rows(setup)
    eval_pairs = majority_pairs(eval_rows, [])
    trained_on = frozenset(prompt_key(r["prompt"]) for r in train_rows)
    say(f"{len(train_rows)} training pairs, {len(eval_pairs)} {setup.split} pairs")
    profile = measure_train(train_rows, load_tokenizer(base_dir), TrainingSettings(**setup.training))
    arms: list[dict[str, Any]] = []
    plans: dict[str, Any] = {}
    for arm in setup.arms:
        plan = arm_plan(arm, profile, setup)
        if plan.method == "skip":
            raise DataError(f"arm {arm}: the plan is to skip ({plan.reasons[-1]}); give it more pairs (--train-pairs)")
        twin = next((name for name, p in plans.items() if same_training(p, plan)), None)
        plans[arm] = plan
        if twin is not None:
            row = next(r for r in arms if r["arm"] == twin)
            arms.append({**row, "arm": arm, "reasons": list(plan.reasons), "same_as": twin})
            say(f"{arm}: the same plan as {twin}; its candidate is reused")
            continue
        say(f"{arm}: {plan.method}, {plan.hyperparameters['max_steps']} steps")
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        trained = train_arm(plan, train_rows, base_dir, work_dir / arm, cache_dir, say, arm,
                            TrainingSettings(**setup.training).precision)
        t1 = time.perf_counter()
        report = evaluate_arm(trained, eval_pairs, base_dir, float(trained.hyperparameters["beta"]), setup, cache_dir,
                              trained_on)
        arms.append(arm_row(arm, plan, trained, report, t1 - t0, time.perf_counter() - t1, cpu_seconds() - cpu0))
        say(f"{arm}: gain {gain_text(arms[-1])}")
    return {"setup": setup_dict(setup), "data": data, "machine": machine(), "commit": commit,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "arms": arms,
            "seconds": time.perf_counter() - started, "cpu_seconds": cpu_seconds()}


def setup_dict(setup: OutcomeSetup) -> dict[str, Any]:
    d = {k: getattr(setup, k) for k in setup.__dataclass_fields__}
    return json.loads(json.dumps(d, default=str))


def machine() -> dict[str, Any]:
    import os

    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "load_average": list(os.getloadavg())}


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def append_log(path: Path, record: dict[str, Any]) -> None:
    """Add one run's record to the JSON list at path (created when missing)."""
    runs = json.loads(path.read_text()) if path.is_file() else []
    runs.append(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(runs, indent=1) + "\n")
