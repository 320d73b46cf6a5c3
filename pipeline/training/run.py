"""Plan -> the method's builder -> fit (resuming from a checkpoint when one fits) -> the candidate folder."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

from alignloop.datasets import Split
from alignloop.errors import DataError
from alignloop.methods import METHODS
from alignloop.models import load_tokenizer, pick_device, training_precision
from alignloop.planner import Plan
from alignloop.training.builders import BuildContext
from alignloop.training.checkpoints import resume_point
from alignloop.training.common import ProgressFn, RunOptions, TrainResult, fit, step_clock
from alignloop.training.fastpath import model_fingerprint

log = logging.getLogger(__name__)


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def train_candidate(plan: Plan, split: Split, base_dir: Path, run_dir: Path, *, device: str = "auto",
                    progress: ProgressFn | None = None, options: RunOptions | None = None) -> TrainResult:
    """Train per the plan on the training split; save the candidate under run_dir/candidate."""
    if plan.method == "skip":
        raise DataError("the plan says skip: there is nothing to train (see the plan's reasons)")
    if plan.method not in METHODS:
        raise DataError(f"plan.method {plan.method!r} has no trainer; expected one of {', '.join(METHODS)}")
    options = options or RunOptions()
    picked = pick_device(device if device != "auto" else options.device)
    options = RunOptions(**{**vars(options), "device": picked,
                            "precision": training_precision(options.precision, picked)})
    tokenizer = load_tokenizer(base_dir)
    ctx = BuildContext(plan=plan, split=split, base_dir=Path(base_dir), run_dir=Path(run_dir), options=options,
                       progress=progress, tokenizer=tokenizer)
    started = time.perf_counter()
    built = METHODS[plan.method].load_builder()(ctx)  # the method's registered builder (alignloop.methods)
    settings = {k: v for k, v in plan.hyperparameters.items() if k != "max_length"}
    settings.update({"method": plan.method, "max_length": built.max_length, "world_size": options.world_size,
                     "precision": options.precision,
                     "base_model": model_fingerprint(base_dir)})
    fingerprint = {"data": built.data_fingerprint,
                   "settings": {k: json.dumps(v, sort_keys=True, default=str) for k, v in settings.items()},
                   "config": hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]}
    resume_from = resume_point(Path(run_dir) / "trainer", fingerprint, options.resume)
    log.info("training %s on %d rows for %d steps on %s in %s%s", plan.method, built.n_train,
             plan.hyperparameters["max_steps"], options.device, options.precision,
             f" (resuming from {resume_from})" if resume_from else "")
    clock = step_clock()
    built.trainer.add_callback(clock)
    history = fit(built.trainer, progress, resume_from)
    runtime = time.perf_counter() - started
    reference_rows, reference_seconds = getattr(built.trainer, "reference_timing", (0, 0.0))
    out = Path(run_dir) / "candidate"
    built.trainer.save_model(str(out))
    if is_main_process():
        tokenizer.save_pretrained(str(out))
    resumed_step = int(Path(resume_from).name.split("-")[-1]) if resume_from else None
    return TrainResult(model_dir=out, kind=built.kind, method=plan.method, n_train=built.n_train,
                       runtime_s=runtime, device=options.device, history=built.pre_history + history,
                       max_length=built.max_length, max_length_reason=built.max_length_reason,
                       truncation=built.truncation, tokens_trained=built.tokens_trained,
                       resumed_from_step=resumed_step, processes=options.world_size, notes=[n for n in built.notes if n],
                       hyperparameters={**plan.hyperparameters, **built.hyperparameters,
                                        "max_length": built.max_length},
                       seconds_per_step=clock.seconds_per_step, steps_timed=clock.steps,
                       setup_seconds=None if clock.started is None else clock.started - started,
                       precision=options.precision, reference_rows=reference_rows,
                       reference_seconds=reference_seconds)
