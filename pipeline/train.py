"""Plan -> a TRL trainer -> a candidate model folder (a LoRA adapter, or full weights).

TRL's trainers are used as they are; this module only decides which one and with what. DPO and IPO
are the DPOTrainer with loss_type sigmoid or ipo; KTO is the KTOTrainer; RLHF is a RewardTrainer
(a reward model fitted to the pairs) followed by the RLOOTrainer, which samples answers and scores
them with it. With LoRA the reference model is the base with the adapter switched off, so no second
copy of the weights is held.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.datasets import Split, preference_dataset, prompt_dataset, unpaired_dataset
from pipeline.errors import DataError
from pipeline.models import load_causal_lm, load_tokenizer, pick_device
from pipeline.planner import Plan

log = logging.getLogger(__name__)

# step, max_steps, the metrics logged at that step
ProgressFn = Callable[[int, int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainResult:
    model_dir: Path
    kind: str                      # "lora" | "full"
    method: str
    n_train: int
    runtime_s: float
    device: str
    history: list[dict[str, float]] = field(default_factory=list)   # one dict per logged step

    @property
    def final_loss(self) -> float | None:
        losses = [h["loss"] for h in self.history if "loss" in h]
        return losses[-1] if losses else None


def _progress_callback(progress: ProgressFn | None):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if progress and logs and "loss" in logs:
                progress(state.global_step, state.max_steps, {k: float(v) for k, v in logs.items()
                                                              if isinstance(v, (int, float))})

    return Progress()


def train_candidate(plan: Plan, split: Split, base_dir: Path, run_dir: Path, *, device: str = "auto",
                    progress: ProgressFn | None = None) -> TrainResult:
    """Train per the plan on the training split; save the candidate under run_dir/candidate."""
    if plan.method == "skip":
        raise DataError("the plan says skip: there is nothing to train (see the plan's reasons)")
    hp = plan.hyperparameters
    device = pick_device(device)
    tokenizer = load_tokenizer(base_dir)
    peft_config = _lora_config(hp, task_type="CAUSAL_LM")
    callbacks = [_progress_callback(progress)]
    common = _common_args(hp, run_dir / "trainer", device, progress)
    sequence = dict(max_length=hp["max_length"], dataset_num_proc=None)
    reward_history: list[dict[str, float]] = []
    started = time.perf_counter()
    if plan.method in ("dpo", "ipo"):
        from trl import DPOConfig, DPOTrainer

        rows = split.train_pairs + _pairs_from_thumbs(hp, split)
        if not rows:
            raise DataError("no training pairs in the snapshot; DPO/IPO need comparisons")
        dataset = preference_dataset(rows)
        extra = {"label_smoothing": float(hp["label_smoothing"])} if hp.get("label_smoothing") else {}
        args = DPOConfig(loss_type=list(hp["loss_type"]), beta=hp["beta"], **extra, **sequence, **common)
        trainer = DPOTrainer(model=load_causal_lm(base_dir, device=device), ref_model=None, args=args,
                             train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config,
                             callbacks=callbacks)
    elif plan.method == "kto":
        from trl import KTOConfig, KTOTrainer

        dataset = unpaired_dataset(split.train_unpaired, split.train_pairs, seed=hp["seed"])
        if len(dataset) < 2:
            raise DataError("KTO needs at least 2 training rows")
        args = KTOConfig(loss_type=hp["loss_type"], beta=hp["beta"], desirable_weight=hp["desirable_weight"],
                         undesirable_weight=hp["undesirable_weight"], **sequence, **common)
        trainer = KTOTrainer(model=load_causal_lm(base_dir, device=device), ref_model=None, args=args,
                             train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config,
                             callbacks=callbacks)
    else:  # rlhf
        from trl import RLOOConfig, RLOOTrainer

        if not split.train_pairs:
            raise DataError("no training pairs in the snapshot; RLHF's reward model learns from comparisons")
        reward_model, reward_history = _train_reward_model(hp, split, base_dir, run_dir, device, tokenizer, progress)
        dataset = prompt_dataset(split.train_pairs + split.train_unpaired)
        args = RLOOConfig(beta=hp["beta"], num_generations=hp["num_generations"],
                          max_completion_length=hp["max_completion_length"], temperature=hp["temperature"], **common)
        trainer = RLOOTrainer(model=load_causal_lm(base_dir, device=device), reward_funcs=reward_model, args=args,
                              train_dataset=dataset, processing_class=tokenizer,
                              reward_processing_classes=tokenizer, peft_config=peft_config,
                              callbacks=[_progress_callback(_on_scale(progress, hp["reward_steps"], 0))])

    log.info("training %s on %d rows for %d steps on %s", plan.method, len(dataset), hp["max_steps"], device)
    history = _fit(trainer, progress)
    runtime = time.perf_counter() - started
    out = run_dir / "candidate"
    trainer.save_model(str(out))
    tokenizer.save_pretrained(str(out))
    return TrainResult(model_dir=out, kind="lora" if peft_config else "full", method=plan.method,
                       n_train=len(dataset), runtime_s=runtime, device=device,
                       history=[{**h, "phase": "reward_model"} for h in reward_history] + history)


def _pairs_from_thumbs(hp: dict[str, Any], split: Split) -> list[dict[str, Any]]:
    """The pairs the plan's train_on adds: up vs down answers to one prompt, from the training thumbs."""
    if hp.get("train_on") != "pairs+thumb_pairs" or not split.train_unpaired:
        return []
    import pyarrow as pa

    from pipeline.conversions import pairs_from_thumbs
    from pipeline.schema import UNPAIRED_SCHEMA

    table = pa.Table.from_pylist([{k: r.get(k) for k in UNPAIRED_SCHEMA.names} for r in split.train_unpaired],
                                 schema=UNPAIRED_SCHEMA)
    return pairs_from_thumbs(table).to_pylist()


def _lora_config(hp: dict[str, Any], task_type: str):
    if not hp.get("lora"):
        return None
    from peft import LoraConfig

    lora = hp["lora"]
    return LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                      target_modules=list(lora["target_modules"]), task_type=task_type)


def _common_args(hp: dict[str, Any], output_dir: Path, device: str, progress: ProgressFn | None,
                 max_steps: int | None = None, learning_rate: float | None = None) -> dict[str, Any]:
    """TrainingArguments every TRL trainer here shares."""
    on_cpu = device == "cpu"
    steps = max_steps or hp["max_steps"]
    return dict(
        output_dir=str(output_dir),
        max_steps=steps,
        learning_rate=learning_rate or hp["learning_rate"],
        per_device_train_batch_size=hp["per_device_batch_size"],
        gradient_accumulation_steps=hp["gradient_accumulation_steps"],
        seed=hp["seed"],
        data_seed=hp["seed"],
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=on_cpu,
        bf16=not on_cpu and _bf16_ok(),
        # Checkpointing trades ~20% speed for memory; the models this runs on CPU are small.
        gradient_checkpointing=not on_cpu,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, steps // 10),
        disable_tqdm=progress is not None,
    )


def _fit(trainer, progress: ProgressFn | None) -> list[dict[str, float]]:
    """Train and return the logged steps (loss and the trainer's metrics)."""
    if progress is not None:
        # Our callback reports steps; transformers' printer would dump every log dict to stdout too.
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    trainer.train()
    return [
        {k: float(v) for k, v in entry.items() if isinstance(v, (int, float))}
        for entry in trainer.state.log_history if "loss" in entry
    ]


def _on_scale(progress: ProgressFn | None, before: int, after: int) -> ProgressFn | None:
    """Report one phase's steps on the scale of all phases: `before` steps done, `after` still to come."""
    if progress is None:
        return None
    return lambda step, total, logs: progress(before + step, before + total + after, logs)


def _train_reward_model(hp: dict[str, Any], split: Split, base_dir: Path, run_dir: Path, device: str,
                        tokenizer, progress: ProgressFn | None):
    """RLHF's first phase: a scalar reward model (the base with a score head) fitted to the pairs."""
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    model = AutoModelForSequenceClassification.from_pretrained(str(base_dir), num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id  # the reward is read at the last non-pad token
    steps = hp["reward_steps"]
    args = RewardConfig(max_length=hp["max_length"], dataset_num_proc=None,
                        **_common_args(hp, run_dir / "reward_trainer", device, progress,
                                       max_steps=steps, learning_rate=hp["reward_learning_rate"]))
    trainer = RewardTrainer(model=model, args=args, train_dataset=preference_dataset(split.train_pairs),
                            processing_class=tokenizer, peft_config=_lora_config(hp, task_type="SEQ_CLS"),
                            callbacks=[_progress_callback(_on_scale(progress, 0, hp["max_steps"]))])
    log.info("training the reward model on %d pairs for %d steps", len(split.train_pairs), steps)
    history = _fit(trainer, progress)
    reward_model = trainer.model
    if hasattr(reward_model, "merge_and_unload"):
        reward_model = reward_model.merge_and_unload()
    reward_model.eval()
    reward_model.save_pretrained(str(run_dir / "reward_model"))
    return reward_model, history


def _bf16_ok() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
