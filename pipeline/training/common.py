"""What every method's builder shares: the result record, TrainingArguments, LoRA, progress and the fit loop."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
# Progress lines for log files (a scheduler has no terminal for the bars): one every `log_every` steps.
progress_log = logging.getLogger("alignloop.training.progress")

# step, max_steps, the metrics logged at that step
ProgressFn = Callable[[int, int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainResult:
    model_dir: Path
    kind: str                      # "lora" | "full"
    method: str
    n_train: int                   # distinct training rows the trainer was given
    runtime_s: float
    device: str
    history: list[dict[str, float]] = field(default_factory=list)   # one dict per logged step
    max_length: int | None = None
    max_length_reason: str = ""
    truncation: dict[str, Any] = field(default_factory=dict)         # rows truncated / dropped and tokens removed
    tokens_trained: int = 0        # prompt + answer tokens in the batches the steps consumed (padding excluded)
    resumed_from_step: int | None = None
    processes: int = 1             # training processes (accelerate launch), each reading its share of a step's rows
    notes: list[str] = field(default_factory=list)                    # what training changed or measured, in words
    hyperparameters: dict[str, Any] = field(default_factory=dict)     # as trained (e.g. KTO weights from the rows)
    seconds_per_step: float | None = None   # wall seconds per optimizer step, first step to last (this process)
    steps_timed: int = 0                    # steps behind seconds_per_step (fewer when resumed)
    setup_seconds: float | None = None      # runtime before the first step: model, tokens, reference log-probs
    precision: str = "float32"              # float32, or bfloat16 mixed precision (training.precision)
    reference_rows: int = 0                 # rows whose reference log-probs were scored before the first step
    reference_seconds: float = 0.0          # and the seconds that took (part of setup_seconds)

    @property
    def final_loss(self) -> float | None:
        losses = [h["loss"] for h in self.history if "loss" in h]
        return losses[-1] if losses else None


def lora_config(hp: dict[str, Any], task_type: str):
    if not hp.get("lora"):
        return None
    from peft import LoraConfig

    lora = hp["lora"]
    return LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                      target_modules=list(lora["target_modules"]), task_type=task_type)


@dataclass(frozen=True)
class RunOptions:
    """How to run (not what to learn): device, checkpoints, progress lines. Not part of the plan."""

    device: str = "cpu"
    checkpoint_every: int = 0        # 0: no checkpoints
    log_every: int = 10              # 0: no progress lines
    resume: bool = True
    cache_dir: Path | None = None    # tokenised rows and reference log-probs, reused across runs
    world_size: int = 1              # processes under `accelerate launch`
    precision: str = "float32"       # training.precision: auto, float32 or bfloat16 (mixed precision)


def common_args(hp: dict[str, Any], output_dir: Path, options: RunOptions, progress: ProgressFn | None,
                max_steps: int | None = None, learning_rate: float | None = None) -> dict[str, Any]:
    """TrainingArguments every TRL trainer here shares."""
    on_cpu = options.device == "cpu"
    steps = max_steps or hp["max_steps"]
    every = options.checkpoint_every
    return dict(
        output_dir=str(output_dir),
        max_steps=steps,
        learning_rate=learning_rate or hp["learning_rate"],
        per_device_train_batch_size=hp["per_device_batch_size"],
        gradient_accumulation_steps=hp["gradient_accumulation_steps"],
        seed=hp["seed"],
        data_seed=hp["seed"],
        logging_steps=1,
        save_strategy="steps" if every else "no",
        save_steps=every or 500,
        save_total_limit=2 if every else None,
        report_to=[],
        use_cpu=on_cpu,
        # bfloat16 autocast where the hardware computes it natively (training.precision, resolved before);
        # on CPU gradient checkpointing only slows a step down.
        bf16=options.precision == "bfloat16",
        gradient_checkpointing=not on_cpu,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, steps // 10),
        # No bars when someone else shows progress, or when nobody watches a terminal (log lines instead).
        disable_tqdm=progress is not None or not sys.stderr.isatty(),
        dataloader_num_workers=0,
        # LoRA under DDP: every trainable parameter takes part in every step; skip the search for unused ones.
        ddp_find_unused_parameters=False if options.world_size > 1 else None,
    )


def policy_trainer(trainer_cls, ctx, hp: dict[str, Any], args, dataset, **extra) -> tuple[Any, str]:
    """(trainer, "lora" or "full"): TRL's offline preference trainer (DPO, KTO) over the base model, with a
    LoRA adapter whose initial weights are seeded from hp["seed"] when hp asks for one, no separate
    reference model, and alignloop's progress callbacks. `extra` goes to the trainer as is."""
    from transformers import set_seed

    from alignloop.models import load_causal_lm

    peft_config = lora_config(hp, task_type="CAUSAL_LM")
    model = load_causal_lm(ctx.base_dir, device=ctx.options.device)
    set_seed(hp["seed"])  # the adapter's initial weights, whatever ran before
    trainer = trainer_cls(
        model=model, ref_model=None, args=args,
        train_dataset=dataset, processing_class=ctx.tokenizer, peft_config=peft_config,
        callbacks=[progress_callback(ctx.progress), log_line_callback(ctx.options.log_every)], **extra,
    )
    return trainer, "lora" if peft_config else "full"


def progress_callback(progress: ProgressFn | None):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if progress and logs and "loss" in logs:
                progress(state.global_step, state.max_steps, {k: float(v) for k, v in logs.items()
                                                              if isinstance(v, (int, float))})

    return Progress()


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def log_line_callback(every: int, label: str = "training"):
    """A log line every `every` optimizer steps with step, loss, elapsed and ETA: what a log file shows."""
    from transformers import TrainerCallback

    class LogLines(TrainerCallback):
        started = 0.0
        first_step = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()
            self.first_step = state.global_step      # > 0 when resumed from a checkpoint

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not every or not logs or "loss" not in logs:
                return
            step, total = state.global_step, state.max_steps
            if step % every and step != total:
                return
            elapsed = time.perf_counter() - self.started
            done = max(step - self.first_step, 1)
            eta = elapsed / done * (total - step)
            progress_log.info("%s step %d/%d loss %.4f elapsed %s eta %s", label, step, total, float(logs["loss"]),
                              format_seconds(elapsed), format_seconds(eta))

    return LogLines()


def step_clock():
    """A callback timing the optimizer steps alone (from the start of training to its last step): `seconds`,
    `steps` and `started` (perf_counter at the start) after training."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        started: float | None = None
        seconds = 0.0
        steps = 0
        first_step = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()
            self.first_step = state.global_step

        def on_step_end(self, args, state, control, **kwargs):
            if self.started is not None:
                self.seconds = time.perf_counter() - self.started
                self.steps = state.global_step - self.first_step

        @property
        def seconds_per_step(self) -> float | None:
            return self.seconds / self.steps if self.steps else None

    return StepClock()


def fit(trainer, progress: ProgressFn | None, resume_from: str | None = None) -> list[dict[str, float]]:
    """Train (from a checkpoint when given) and return the logged steps (loss and the trainer's metrics)."""
    if progress is not None:
        # Our callback reports steps; transformers' printer would dump every log dict to stdout too.
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    trainer.train(resume_from_checkpoint=resume_from)
    return [
        {k: float(v) for k, v in entry.items() if isinstance(v, (int, float))}
        for entry in trainer.state.log_history if "loss" in entry
    ]


def on_scale(progress: ProgressFn | None, before: int, after: int) -> ProgressFn | None:
    """Report one phase's steps on the scale of all phases: `before` steps done, `after` still to come."""
    if progress is None:
        return None
    return lambda step, total, logs: progress(before + step, before + total + after, logs)
