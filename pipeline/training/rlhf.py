"""RLHF: a RewardTrainer fits a scalar reward model to the pairs, then the RLOOTrainer samples answers
to the training prompts and scores them with it (each against its siblings)."""

from __future__ import annotations

import logging

from alignloop.datasets import preference_dataset, prompt_dataset
from alignloop.errors import DataError
from alignloop.models import load_causal_lm
from alignloop.training.builders import BuildContext, Built
from alignloop.training.common import (
    common_args,
    fit,
    log_line_callback,
    lora_config,
    on_scale,
    progress_callback,
)
from alignloop.training.data import dataset_fingerprint, fit_rows, tokenize_pairs, tokenizer_fingerprint

log = logging.getLogger(__name__)


def build_rlhf(ctx: BuildContext) -> Built:
    from trl import RLOOConfig, RLOOTrainer

    hp = ctx.hp
    if not ctx.split.train_pairs:
        raise DataError("no training pairs in the snapshot; RLHF's reward model learns from comparisons")
    # Measured with the same rule as DPO, so the reward model's max_length is chosen and reported alike.
    tokenized = tokenize_pairs(ctx.tokenizer, ctx.split.train_pairs, tokenizer_fingerprint(ctx.base_dir), ctx.cache_dir)
    fitted = fit_rows(tokenized, hp.get("max_length"), ctx.max_length_cap, hp.get("max_length_reason"))
    reward_model, reward_history = _train_reward_model(ctx, fitted.max_length)
    dataset = prompt_dataset(ctx.split.train_pairs + ctx.split.train_unpaired)
    args = RLOOConfig(beta=hp["beta"], num_generations=hp["num_generations"],
                      max_completion_length=hp["max_completion_length"], temperature=hp["temperature"],
                      **common_args(hp, ctx.run_dir / "trainer", ctx.options, ctx.progress))
    peft_config = lora_config(hp, task_type="CAUSAL_LM")
    trainer = RLOOTrainer(model=load_causal_lm(ctx.base_dir, device=ctx.options.device), reward_funcs=reward_model,
                          args=args, train_dataset=dataset, processing_class=ctx.tokenizer,
                          reward_processing_classes=ctx.tokenizer, peft_config=peft_config,
                          callbacks=[progress_callback(on_scale(ctx.progress, hp["reward_steps"], 0)),
                                     log_line_callback(ctx.options.log_every, "policy")])
    return Built(trainer=trainer, n_train=len(dataset), data_fingerprint=dataset_fingerprint(fitted.rows, []),
                 max_length=fitted.max_length, max_length_reason=fitted.max_length_reason,
                 truncation=vars(fitted.truncation),
                 notes=[fitted.max_length_reason, "reward model: " + fitted.truncation.describe()],
                 pre_history=[{**h, "phase": "reward_model"} for h in reward_history],
                 kind="lora" if peft_config else "full")


def _train_reward_model(ctx: BuildContext, max_length: int):
    """RLHF's first phase: a scalar reward model (the base with a score head) fitted to the pairs."""
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    hp, tokenizer = ctx.hp, ctx.tokenizer
    model = AutoModelForSequenceClassification.from_pretrained(str(ctx.base_dir), num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id  # the reward is read at the last non-pad token
    steps = hp["reward_steps"]
    # The reward phase is short and runs once; it is not checkpointed (the policy phase is).
    options = type(ctx.options)(**{**vars(ctx.options), "checkpoint_every": 0})
    args = RewardConfig(max_length=max_length, dataset_num_proc=None,
                        **common_args(hp, ctx.run_dir / "reward_trainer", options, ctx.progress,
                                      max_steps=steps, learning_rate=hp["reward_learning_rate"]))
    trainer = RewardTrainer(model=model, args=args, train_dataset=preference_dataset(ctx.split.train_pairs),
                            processing_class=tokenizer, peft_config=lora_config(hp, task_type="SEQ_CLS"),
                            callbacks=[progress_callback(on_scale(ctx.progress, 0, hp["max_steps"])),
                                       log_line_callback(ctx.options.log_every, "reward model")])
    log.info("training the reward model on %d pairs for %d steps", len(ctx.split.train_pairs), steps)
    history = fit(trainer, ctx.progress)
    reward_model = trainer.model
    if hasattr(reward_model, "merge_and_unload"):
        reward_model = reward_model.merge_and_unload()
    reward_model.eval()
    reward_model.save_pretrained(str(ctx.run_dir / "reward_model"))
    return reward_model, history
