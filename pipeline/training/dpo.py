"""DPO, IPO and robust DPO: TRL's DPOTrainer on rows we tokenised, fitted and ordered ourselves.

The trainer is TRL's, with four changes of *how*, none of *what*: it accepts rows already tokenised
(and never drops one), reads them in our length-grouped order, takes the reference log-probs from our
cached pass, and runs its LM head only on answer positions. The losses are TRL's (tested equal to a
plain DPOTrainer's).
"""

from __future__ import annotations

import logging
from pathlib import Path

from alignloop.errors import DataError
from alignloop.training.builders import BuildContext, Built
from alignloop.training.common import common_args, policy_trainer
from alignloop.training.data import (
    dataset_fingerprint,
    fit_rows,
    padded_tokens,
    row_length,
    tokenize_pairs,
    tokenizer_fingerprint,
    training_order,
)
from alignloop.training.fastpath import compact_lm_head, model_fingerprint, reference_logps

log = logging.getLogger(__name__)


def dpo_trainer_class():
    """TRL's DPOTrainer, reading pre-tokenised rows in order with cached reference log-probs."""
    from torch.utils.data import SequentialSampler
    from trl import DPOTrainer

    class AlignloopDPOTrainer(DPOTrainer):
        def __init__(self, *args, ref_cache_file: Path | None = None, model_id: str = "", **kwargs):
            import trl.trainer.dpo_trainer as trl_dpo

            self._ref_cache_file = ref_cache_file
            # TRL hashes every weight to key its own reference cache (slow, and memory the size of the model); ours is
            # keyed by the model folder's fingerprint, so that string stands in for the hash.
            original, trl_dpo.hash_module = trl_dpo.hash_module, lambda module: model_id
            try:
                super().__init__(*args, **kwargs)
            finally:
                trl_dpo.hash_module = original

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            if "prompt_ids" in dataset.column_names:
                return dataset  # tokenised and fitted to max_length by alignloop.training.data
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

        def _get_train_sampler(self, train_dataset=None):
            # The rows are already shuffled and grouped into batches by length, for exactly these steps.
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

        def _precompute_ref_logps(self, dataset, name, batch_size):
            if self.is_deepspeed_enabled or self.is_fsdp_enabled:  # sharded weights: TRL's own pass gathers them
                return super()._precompute_ref_logps(dataset, name, batch_size)
            return reference_logps(self, dataset, self._ref_cache_file, batch_size)

        def compute_loss(self, *args, **kwargs):
            with compact_lm_head():
                return super().compute_loss(*args, **kwargs)

    return AlignloopDPOTrainer


def pairs_from_training_thumbs(hp: dict, split) -> list[dict]:
    """The pairs the plan's train_on adds: an up and a down answer to one prompt, from the training thumbs."""
    if hp.get("train_on") != "pairs+thumb_pairs" or not split.train_unpaired:
        return []
    import pyarrow as pa

    from alignloop.conversions import pairs_from_thumbs
    from alignloop.schema import UNPAIRED_SCHEMA

    table = pa.Table.from_pylist([{k: r.get(k) for k in UNPAIRED_SCHEMA.names} for r in split.train_unpaired],
                                 schema=UNPAIRED_SCHEMA)
    return pairs_from_thumbs(table).to_pylist()


def build_dpo(ctx: BuildContext) -> Built:
    """DPO (loss sigmoid), IPO (loss ipo) or robust DPO (loss robust, label_smoothing = flip rate), each with
    TRL's sft term added when the plan weights one (training.sft_weight)."""
    from datasets import Dataset
    from trl import DPOConfig

    hp = ctx.hp
    pairs = ctx.split.train_pairs + pairs_from_training_thumbs(hp, ctx.split)
    if not pairs:
        raise DataError("no training pairs in the snapshot; DPO/IPO need comparisons")
    fingerprint = tokenizer_fingerprint(ctx.base_dir)
    tokenized = tokenize_pairs(ctx.tokenizer, pairs, fingerprint, ctx.cache_dir)
    fitted = fit_rows(tokenized, hp.get("max_length"), ctx.max_length_cap, hp.get("max_length_reason"))
    batch = hp["per_device_batch_size"]
    order = training_order([row_length(r) for r in fitted.rows], ctx.rows_per_run, batch, hp["seed"])
    dataset = Dataset.from_list([{**fitted.rows[i], "row": i} for i in order])
    real, computed = padded_tokens(fitted.rows, order, batch, ("chosen_ids", "rejected_ids"))
    extra = {}
    if hp.get("label_smoothing"):
        extra["label_smoothing"] = float(hp["label_smoothing"])
    if hp.get("loss_weights"):  # the preference loss and TRL's sft term (training.sft_weight)
        extra["loss_weights"] = [float(w) for w in hp["loss_weights"]]
    args = DPOConfig(
        loss_type=list(hp["loss_type"]), beta=hp["beta"], max_length=fitted.max_length, dataset_num_proc=None,
        precompute_ref_log_probs=True, precompute_ref_batch_size=2 * batch,
        **extra, **common_args(hp, ctx.run_dir / "trainer", ctx.options, ctx.progress),
    )
    model_id = model_fingerprint(ctx.base_dir)
    ref_cache = None
    if ctx.cache_dir is not None:
        ref_cache = (ctx.cache_dir / "reference" /
                     f"{model_id}-{fitted.max_length}-{ctx.options.precision}-{dataset_fingerprint(fitted.rows, [])}.json")
    trainer, kind = policy_trainer(dpo_trainer_class(), ctx, hp, args, dataset, ref_cache_file=ref_cache,
                                   model_id=model_id)
    notes = [fitted.max_length_reason, fitted.truncation.describe(),
             f"batches grouped by length: {computed - real} pad tokens of {computed} computed "
             f"({100 * (computed - real) / max(computed, 1):.1f}%)"]
    return Built(trainer=trainer, n_train=len(fitted.rows), data_fingerprint=dataset_fingerprint(fitted.rows, order),
                 max_length=fitted.max_length, max_length_reason=fitted.max_length_reason,
                 truncation=vars(fitted.truncation), tokens_trained=real, notes=notes,
                 kind=kind)
