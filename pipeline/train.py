"""Plan -> a TRL trainer -> a candidate model folder (a LoRA adapter, or full weights).

TRL's trainers are used as they are; this module only decides which one and with what. DPO and IPO
are the DPOTrainer with loss_type sigmoid or ipo; KTO is the KTOTrainer. With LoRA the reference
model is the base with the adapter switched off, so no second copy of the weights is held.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.datasets import Split, preference_dataset, unpaired_dataset
from pipeline.errors import DataError, TerminalError
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
    if plan.method == "rlhf":
        raise TerminalError(
            "RLHF training (reward model + online RL) is not available in this version; "
            "set training.method to auto, dpo, ipo or kto"
        )
    hp = plan.hyperparameters
    device = pick_device(device)
    on_cpu = device == "cpu"
    tokenizer = load_tokenizer(base_dir)
    model = load_causal_lm(base_dir, device=device)
    peft_config = None
    if hp.get("lora"):
        from peft import LoraConfig

        lora = hp["lora"]
        peft_config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                                 target_modules=list(lora["target_modules"]), task_type="CAUSAL_LM")
    common: dict[str, Any] = dict(
        output_dir=str(run_dir / "trainer"),
        max_steps=hp["max_steps"],
        learning_rate=hp["learning_rate"],
        per_device_train_batch_size=hp["per_device_batch_size"],
        gradient_accumulation_steps=hp["gradient_accumulation_steps"],
        max_length=hp["max_length"],
        beta=hp["beta"],
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
        warmup_steps=max(1, hp["max_steps"] // 10),
        disable_tqdm=progress is not None,
        dataset_num_proc=None,
    )
    callbacks = [_progress_callback(progress)]
    if plan.method in ("dpo", "ipo"):
        from trl import DPOConfig, DPOTrainer

        if not split.train_pairs:
            raise DataError("no training pairs in the snapshot; DPO/IPO need comparisons")
        dataset = preference_dataset(split.train_pairs)
        args = DPOConfig(loss_type=list(hp["loss_type"]), **common)
        trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=dataset,
                             processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)
    else:
        from trl import KTOConfig, KTOTrainer

        dataset = unpaired_dataset(split.train_unpaired, split.train_pairs, seed=hp["seed"])
        if len(dataset) < 2:
            raise DataError("KTO needs at least 2 training rows")
        args = KTOConfig(loss_type=hp["loss_type"], desirable_weight=hp["desirable_weight"],
                         undesirable_weight=hp["undesirable_weight"], **common)
        trainer = KTOTrainer(model=model, ref_model=None, args=args, train_dataset=dataset,
                             processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)

    if progress is not None:
        # Our callback reports steps; transformers' printer would dump every log dict to stdout too.
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    log.info("training %s on %d rows for %d steps on %s", plan.method, len(dataset), hp["max_steps"], device)
    started = time.perf_counter()
    trainer.train()
    runtime = time.perf_counter() - started
    out = run_dir / "candidate"
    trainer.save_model(str(out))
    tokenizer.save_pretrained(str(out))
    history = [
        {k: float(v) for k, v in entry.items() if isinstance(v, (int, float))}
        for entry in trainer.state.log_history if "loss" in entry
    ]
    return TrainResult(model_dir=out, kind="lora" if peft_config else "full", method=plan.method,
                       n_train=len(dataset), runtime_s=runtime, device=device, history=history)


def _bf16_ok() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
