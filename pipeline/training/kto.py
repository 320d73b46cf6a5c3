"""KTO: TRL's KTOTrainer on thumbs rows (or pairs split into an up and a down row).

The desirable/undesirable weights are set from the rows the steps actually read (after the split,
and with multiplicity when the steps cycle through the rows), so the weighted ratio that the plan
states is the one TRL checks: desirable_weight * n_up / (undesirable_weight * n_down) in [1, 4/3].
"""

from __future__ import annotations

import logging
import math

from pipeline.errors import DataError
from pipeline.models import load_causal_lm
from pipeline.training.builders import BuildContext, Built
from pipeline.training.common import common_args, log_line_callback, lora_config, progress_callback
from pipeline.training.data import (
    dataset_fingerprint,
    fit_rows,
    row_length,
    tokenize_unpaired,
    tokenizer_fingerprint,
    training_order,
)
from pipeline.training.fastpath import compact_lm_head

log = logging.getLogger(__name__)

# KTO paper, Eq. 8: desirable_weight * n_desirable / (undesirable_weight * n_undesirable) in [1, 4/3].
KTO_RATIO_RANGE = (1.0, 4.0 / 3.0)


def kto_weights(n_desirable: int, n_undesirable: int, target_ratio: float = 1.0) -> tuple[float, float]:
    """(desirable_weight, undesirable_weight) giving the weighted ratio `target_ratio` (rounded up, never below 1).

    The scarcer side is weighted up; rounding is upward so the ratio never lands just under 1.
    """
    if n_desirable <= 0 or n_undesirable <= 0:
        return 1.0, 1.0
    if n_desirable <= n_undesirable:
        return math.ceil(target_ratio * n_undesirable / n_desirable * 10_000) / 10_000, 1.0
    # More up than down: weight the downs up, to the largest weight that keeps the ratio >= target.
    return 1.0, math.floor(n_desirable / (target_ratio * n_undesirable) * 10_000) / 10_000


def weighted_ratio(n_desirable: int, n_undesirable: int, desirable_weight: float, undesirable_weight: float) -> float:
    return desirable_weight * n_desirable / max(undesirable_weight * n_undesirable, 1e-12)


def trl_accepts_weights(n_desirable: int, n_undesirable: int, desirable_weight: float,
                        undesirable_weight: float) -> bool:
    """TRL 1.16's own check (KTOTrainer._prepare_dataset), rounding included: False is when it warns."""
    n_desirable, n_undesirable = max(n_desirable, 1), max(n_undesirable, 1)
    if n_desirable == n_undesirable:
        return True
    des_lo = round((n_undesirable * undesirable_weight / n_desirable) * 1, 2)
    des_hi = round((n_undesirable * undesirable_weight / n_desirable) * 1.33, 2)
    und_lo = round((n_desirable * desirable_weight / n_undesirable) / 1.33, 2)
    und_hi = round((n_desirable * desirable_weight / n_undesirable) / 1, 2)
    return des_lo <= desirable_weight <= des_hi or und_lo <= undesirable_weight <= und_hi


def kto_trainer_class():
    from torch.utils.data import SequentialSampler
    from trl import KTOTrainer

    class AlignloopKTOTrainer(KTOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            if "prompt_ids" not in dataset.column_names:
                return super()._prepare_dataset(dataset, processing_class, args, dataset_name)
            if not self.calculate_KL:
                return dataset
            # As TRL does: the KL term pairs each prompt with the previous row's answer within a batch.
            def add_kl(examples):
                examples["KL_completion_ids"] = [examples["completion_ids"][-1]] + examples["completion_ids"][:-1]
                return examples

            return dataset.map(add_kl, batched=True, batch_size=args.per_device_train_batch_size)

        def _get_train_sampler(self, train_dataset=None):
            # Already shuffled for exactly these steps; KTO's KL rotation relies on the batch order.
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

        def compute_loss(self, *args, **kwargs):
            with compact_lm_head():
                return super().compute_loss(*args, **kwargs)

    return AlignloopKTOTrainer


def _unpaired_rows(ctx: BuildContext) -> list[dict]:
    """Thumbs rows when there are any; otherwise each pair as one desirable and one undesirable row."""
    if ctx.split.train_unpaired:
        return [{"prompt": r["prompt"], "completion": r["completion"], "label": bool(r["label"])}
                for r in ctx.split.train_unpaired]
    return [row for r in ctx.split.train_pairs for row in (
        {"prompt": r["prompt"], "completion": r["chosen"], "label": True},
        {"prompt": r["prompt"], "completion": r["rejected"], "label": False},
    )]


def build_kto(ctx: BuildContext) -> Built:
    from datasets import Dataset
    from transformers import set_seed
    from trl import KTOConfig

    hp = dict(ctx.hp)
    rows = _unpaired_rows(ctx)
    if len(rows) < 2:
        raise DataError("KTO needs at least 2 training rows")
    tokenized = tokenize_unpaired(ctx.tokenizer, rows, tokenizer_fingerprint(ctx.base_dir), ctx.cache_dir)
    fitted = fit_rows(tokenized, hp.get("max_length"), ctx.max_length_cap)
    batch = hp["per_device_batch_size"]
    # Not grouped by length: in thumbs data length often follows the label, and a batch of one label
    # would skew KTO's per-batch KL estimate.
    order = training_order([row_length(r) for r in fitted.rows], ctx.rows_per_run, batch, hp["seed"],
                           group_by_length=False)
    read = [fitted.rows[i] for i in order]
    n_up = sum(r["label"] for r in read)
    n_down = len(read) - n_up
    notes = [fitted.max_length_reason, fitted.truncation.describe()]
    dw, uw = float(hp.get("desirable_weight", 1.0)), float(hp.get("undesirable_weight", 1.0))
    lo, hi = KTO_RATIO_RANGE
    ratio = weighted_ratio(n_up, n_down, dw, uw)
    if n_up and n_down and not (lo <= ratio <= hi and trl_accepts_weights(n_up, n_down, dw, uw)):
        new_dw, new_uw = kto_weights(n_up, n_down)
        notes.append(f"KTO weights set from the {len(read)} rows the steps read ({n_up} up, {n_down} down): "
                     f"desirable {new_dw}, undesirable {new_uw} (weighted ratio "
                     f"{weighted_ratio(n_up, n_down, new_dw, new_uw):.3f}; the plan's {dw}/{uw} gave {ratio:.3f})")
        dw, uw = new_dw, new_uw
    else:
        notes.append(f"KTO weights desirable {dw}, undesirable {uw}: weighted ratio {ratio:.3f} on the "
                     f"{len(read)} rows the steps read ({n_up} up, {n_down} down)")
    hp["desirable_weight"], hp["undesirable_weight"] = dw, uw
    dataset = Dataset.from_list([{**r, "row": i} for i, r in zip(order, read, strict=True)])
    args = KTOConfig(loss_type=hp["loss_type"], beta=hp["beta"], desirable_weight=dw, undesirable_weight=uw,
                     max_length=fitted.max_length, dataset_num_proc=None,
                     **common_args(hp, ctx.run_dir / "trainer", ctx.options, ctx.progress))
    peft_config = lora_config(hp, task_type="CAUSAL_LM")
    model = load_causal_lm(ctx.base_dir, device=ctx.options.device)
    set_seed(hp["seed"])  # the adapter's initial weights, whatever ran before
    trainer = kto_trainer_class()(
        model=model, ref_model=None, args=args,
        train_dataset=dataset, processing_class=ctx.tokenizer, peft_config=peft_config,
        callbacks=[progress_callback(ctx.progress), log_line_callback(ctx.options.log_every)],
    )
    tokens = sum(len(r["prompt_ids"]) + len(r["completion_ids"]) for r in read)
    return Built(trainer=trainer, n_train=len(fitted.rows), data_fingerprint=dataset_fingerprint(fitted.rows, order),
                 max_length=fitted.max_length, max_length_reason=fitted.max_length_reason,
                 truncation=vars(fitted.truncation), tokens_trained=tokens, notes=notes,
                 hyperparameters={"desirable_weight": dw, "undesirable_weight": uw},
                 kind="lora" if peft_config else "full")

