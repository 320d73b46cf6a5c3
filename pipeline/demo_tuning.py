"""Choose the demo's training settings on a validation split, never on the held-out set.

Training prompts whose (salted) hash falls below `fraction` become validation prompts; the held-out
prompts are set aside untouched. Each candidate setting trains on the rest and is scored on the
validation pairs with the same paired-bootstrap interval the real evaluation uses, and put through the
promotion gate on validation prompts (perplexity guard, and the judged win rate of its own answers over
the reference's, with a judge cross-fitted on the validation prompts). Of the settings the gate passes
on validation, the one whose validation gain has the highest lower bound wins (list only settings that
fit the demo's time budget); none wins when the gate passes none. A setting is
`max_steps:learning_rate`, or `max_steps:learning_rate:sft_weight` to add the SFT term on the chosen
answers (training.sft_weight) with that weight.

    python -m alignloop.demo_tuning --workdir /tmp/demo-tuning 24:0.0003 24:0.0006 24:0.0006:0.5
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignloop.datasets import EvalPair, Split, majority_pairs
from alignloop.schema import prompt_key


def is_validation(prompt: list[dict[str, str]], fraction: float) -> bool:
    digest = hashlib.sha256(("validation:" + prompt_key(prompt)).encode()).hexdigest()
    return int(digest[:8], 16) / 0x1_0000_0000 < fraction


def validation_split(split: Split, fraction: float) -> tuple[Split, list[EvalPair]]:
    """(training split without the validation prompts and without any held-out rows, validation pairs)."""
    def keep(rows):
        return [r for r in rows if not is_validation(r["prompt"], fraction)]

    def held(rows):
        return [r for r in rows if is_validation(r["prompt"], fraction)]

    train = Split(keep(split.train_unpaired), keep(split.train_pairs), [], [])
    return train, majority_pairs(held(split.train_pairs), held(split.train_unpaired))


@dataclass(frozen=True)
class TuningSetting:
    """One setting to try: `max_steps:learning_rate[:sft_weight]`."""

    max_steps: int
    learning_rate: float
    sft_weight: float = 0.0

    def applied_to(self, training):
        """The demo's TrainingSettings with this setting's steps, learning rate and SFT weight (validated)."""
        return training.model_validate({**training.model_dump(), "max_steps": self.max_steps,
                                        "learning_rate": self.learning_rate, "sft_weight": self.sft_weight})

    @property
    def folder_name(self) -> str:
        return f"tune-{self.max_steps}-{self.learning_rate:g}" + (f"-sft{self.sft_weight:g}" if self.sft_weight else "")


def parse_setting(item: str) -> TuningSetting:
    """`24:0.0006` or `24:0.0006:0.5` as a TuningSetting; anything else is a one-line ValueError naming the fix."""
    usage = f"setting {item!r}: expected max_steps:learning_rate[:sft_weight], e.g. 24:0.0006 or 24:0.0006:0.5"
    parts = item.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(usage)
    try:
        steps, lr, weight = int(parts[0]), float(parts[1]), float(parts[2]) if len(parts) == 3 else 0.0
    except ValueError:
        raise ValueError(usage) from None
    if steps < 1 or not (math.isfinite(lr) and lr > 0) or not (math.isfinite(weight) and weight >= 0):
        raise ValueError(f"{usage} (max_steps at least 1, learning_rate above 0, sft_weight 0 or more)")
    return TuningSetting(steps, lr, weight)


def choose_setting(results: dict[str, tuple[float, bool]]) -> str | None:
    """Of {setting: (lower bound of the validation gain, whether the gate passes it on validation)}, the
    setting with the highest lower bound above zero among those the gate passes; None if none."""
    allowed = {k: low for k, (low, passed) in results.items() if passed}
    best = max(allowed, key=allowed.get, default=None)
    return best if best is not None and allowed[best] > 0 else None


def closest_setting(results: dict[str, tuple[float, int]]) -> str | None:
    """When the gate passes none: of {setting: (lower bound of the validation gain, checks it fails)}, the one
    failing the fewest checks, then with the highest lower bound; only settings whose bound is above zero."""
    gaining = {k: v for k, v in results.items() if v[0] > 0}
    return min(gaining, key=lambda k: (gaining[k][1], -gaining[k][0]), default=None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--fraction", type=float, default=0.2, help="share of training prompts used for validation")
    parser.add_argument("settings", nargs="+", help="max_steps:learning_rate or max_steps:learning_rate:sft_weight")
    args = parser.parse_args(argv)
    try:
        settings = {item: parse_setting(item) for item in args.settings}  # all checked before any training
    except ValueError as e:
        parser.error(str(e))
    tuning = _prepare(args.workdir, args.fraction)
    tried = {item: _try_setting(item, setting, tuning, args.workdir) for item, setting in settings.items()}
    chosen = choose_setting({item: (low, passed) for item, (low, passed, _) in tried.items()})
    if chosen is not None:
        print(f"chosen: {chosen}")
        return
    closest = closest_setting({item: (low, failed) for item, (low, _, failed) in tried.items()})
    print("chosen: none; the gate passed none of them on validation" + (
        f"; closest: {closest} (fails {tried[closest][2]} check(s))" if closest else " and none showed a gain"))


@dataclass(frozen=True)
class _Tuning:
    """What every setting tried is trained and judged with."""

    settings: Any        # the demo's Settings
    train: Split
    validation: list[EvalPair]
    base_dir: Path
    shape: Any           # the training rows' DataProfile
    judge: Any


def _prepare(workdir: Path, fraction: float) -> _Tuning:
    """The demo's warehouse ingested, its training rows split into training and validation, their shape, and
    the judge of the answers each setting writes (fitted once, on the training pairs that remain)."""
    from alignloop import stages
    from alignloop.config import load_settings
    from alignloop.demo import write_demo_config, write_demo_warehouse
    from alignloop.evaluation.judge import build_judge
    from alignloop.models import pick_device
    from alignloop.profile import measure_profile

    write_demo_warehouse(workdir / "warehouse.duckdb")
    settings = load_settings(write_demo_config(workdir))
    stages.ingest(settings)
    snapshot, unpaired, pairs = stages._read_snapshot(settings)
    split = stages._load_split(settings, snapshot.snapshot_id)
    train, validation = validation_split(split, fraction)
    base_dir = stages.base_model_dir(settings)
    shape = measure_profile(unpaired, pairs, settings.evaluation.holdout_fraction,
                            max_length=settings.training.max_length)
    n_prompts = len({prompt_key(p.prompt) for p in validation})
    print(f"validation: {len(validation)} pairs over {n_prompts} prompts; training: {len(train.train_pairs)} pairs "
          f"and {len(train.train_unpaired)} thumbs (held-out prompts left out of both)", flush=True)
    ev = settings.evaluation
    max_length = settings.training.max_length or settings.training.max_length_cap
    # The judge of the answers each setting writes is fitted once, cross-fitted on the validation prompts:
    # never on the rows the candidates train on.
    trained_on = frozenset(prompt_key(r["prompt"]) for r in [*train.train_pairs, *train.train_unpaired])
    judge = build_judge(ev.judge, validation, base_dir, workdir / ".cache" / "judge",
                        device=pick_device(settings.training.device), max_length=max_length,
                        batch_size=ev.batch_size, seed=ev.seed, training_prompt_keys=trained_on)
    return _Tuning(settings, train, validation, base_dir, shape, judge)


def _try_setting(item: str, setting: TuningSetting, tuning: _Tuning, workdir: Path) -> tuple[float, bool, int]:
    """Train one setting, score it on validation and put it through the gate there: (lower bound of its
    validation gain, whether the gate passes it, how many of the gate's checks it fails)."""
    from alignloop import stages
    from alignloop.evaluation.candidate import EvalOptions, evaluate_candidate
    from alignloop.evaluation.guards import capability_text, ppl_rise
    from alignloop.gate import decide, input_from_report
    from alignloop.planner import Plan, choose_method
    from alignloop.training import train_candidate

    settings, ev = tuning.settings, tuning.settings.evaluation
    training = setting.applied_to(settings.training)
    plan = choose_method(tuning.shape, training, settings.planning)
    plan = Plan(plan.method, {**plan.hyperparameters, "max_length_cap": training.max_length_cap},
                plan.reasons, plan.shape)  # as the train stage completes it
    run_dir = workdir / setting.folder_name
    result = train_candidate(plan, tuning.train, tuning.base_dir, run_dir, device=settings.training.device,
                             options=stages.run_options(settings))
    # The reference's validation scores are the same for every setting: scored once, then cached.
    options = EvalOptions(max_length=result.max_length, batch_size=ev.batch_size, seed=ev.seed,
                          generation_prompts=ev.generation_prompts, max_new_tokens=ev.max_new_tokens,
                          kl_samples=ev.kl_samples, ppl_text=capability_text(),
                          cache_dir=workdir / ".cache" / "validation",
                          judge_min_accuracy=ev.judge.min_accuracy, judge_accuracy_pairs=ev.judge.accuracy_pairs)
    report = evaluate_candidate(result.model_dir, tuning.base_dir, tuning.validation,
                                beta=float(plan.hyperparameters["beta"]), options=options,
                                device=settings.training.device, judge=tuning.judge)
    report.write(run_dir)
    verdict = decide(input_from_report(json.loads((run_dir / "eval_report.json").read_text()), None),
                     settings.promotion)
    d = report.delta
    rise = ppl_rise(report.ppl_reference, report.ppl_candidate)
    print(f"{item}: validation accuracy {report.pref_accuracy_reference.value:.3f} -> "
          f"{report.pref_accuracy_candidate.value:.3f}, gain {d.value:+.3f} [{d.low:+.3f}, {d.high:+.3f}], "
          f"perplexity rise {rise:+.1%}, train {result.runtime_s:.0f} s, evaluation {report.seconds:.0f} s; "
          f"gate on validation {verdict.verdict.upper()}", flush=True)
    for line in verdict.lines:
        print(f"    {line}", flush=True)
    return d.low, verdict.passed, sum(c.mark == "fail" for c in verdict.checks)


if __name__ == "__main__":
    main()
