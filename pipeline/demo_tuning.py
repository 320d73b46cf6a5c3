"""Choose the demo's training settings on a validation split, never on the held-out set.

Training prompts whose (salted) hash falls below `fraction` become validation prompts; the held-out
prompts are set aside untouched. Each candidate setting trains on the rest and is scored on the
validation pairs with the same paired-bootstrap interval the real evaluation uses. The cheapest
setting whose validation gain has an interval above zero wins.

    python -m pipeline.demo_tuning --workdir /tmp/demo-tuning 24:0.0003 32:0.0003 32:0.0005
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from pipeline.datasets import EvalPair, Split, majority_pairs
from pipeline.schema import prompt_key


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


def main(argv: list[str] | None = None) -> None:
    from pipeline import stages
    from pipeline.config import load_settings
    from pipeline.demo import write_demo_config, write_demo_warehouse
    from pipeline.evaluation.candidate import EvalOptions, evaluate_candidate
    from pipeline.planner import choose_method
    from pipeline.shape import measure_shape
    from pipeline.train import train_candidate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--fraction", type=float, default=0.2, help="share of training prompts used for validation")
    parser.add_argument("settings", nargs="+", help="max_steps:learning_rate, cheapest first")
    args = parser.parse_args(argv)

    write_demo_warehouse(args.workdir / "warehouse.duckdb")
    settings = load_settings(write_demo_config(args.workdir))
    stages.ingest(settings)
    snapshot, unpaired, pairs = stages._read_snapshot(settings)
    split = stages._load_split(settings, snapshot.snapshot_id)
    train, validation = validation_split(split, args.fraction)
    base_dir = stages.base_model_dir(settings)
    shape = measure_shape(unpaired, pairs, settings.evaluation.holdout_fraction)
    print(f"validation: {len(validation)} pairs; training: {len(train.train_pairs)} pairs")
    chosen = None
    for item in args.settings:
        steps, lr = item.split(":")
        training = settings.training.model_copy(
            update={"max_steps": int(steps), "learning_rate": float(lr)})
        plan = choose_method(shape, training, settings.planning)
        run_dir = args.workdir / f"tune-{steps}-{lr}"
        result = train_candidate(plan, train, base_dir, run_dir, device=settings.training.device)
        report = evaluate_candidate(result.model_dir, base_dir, validation, beta=float(plan.hyperparameters["beta"]),
                                    options=EvalOptions(max_length=settings.training.max_length, generation_prompts=0),
                                    device=settings.training.device)
        d = report.delta
        print(f"{item}: validation accuracy {report.pref_accuracy_reference.value:.3f} -> "
              f"{report.pref_accuracy_candidate.value:.3f}, gain {d.value:+.3f} [{d.low:+.3f}, {d.high:+.3f}], "
              f"train {result.runtime_s:.0f} s")
        if chosen is None and d.low > 0:
            chosen = item
    print(f"chosen: {chosen or 'none of them showed a gain on validation'}")


if __name__ == "__main__":
    main()
