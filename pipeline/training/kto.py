"""KTO: TRL's KTOTrainer on the rows the plan's train_on names: thumbs, pairs split into an up and a
down row, or both.

The desirable/undesirable weights are set from the rows the steps actually read (after the split,
and with multiplicity when the steps cycle through the rows), so the weighted ratio that the plan
states is the one TRL checks: desirable_weight * n_up / (undesirable_weight * n_down) in [1, 4/3].
"""

from __future__ import annotations

import logging
import random

from alignloop.datasets import unpaired_training_rows
from alignloop.errors import DataError
from alignloop.planner import kto_weights
from alignloop.training.builders import BuildContext, Built
from alignloop.training.common import common_args, policy_trainer
from alignloop.training.data import (
    LENGTH_GROUP_WINDOW,
    dataset_fingerprint,
    fit_rows,
    padded_tokens,
    tokenize_unpaired,
    tokenizer_fingerprint,
)
from alignloop.training.fastpath import compact_lm_head

log = logging.getLogger(__name__)

# KTO paper, Eq. 8: desirable_weight * n_desirable / (undesirable_weight * n_undesirable) in [1, 4/3].
KTO_RATIO_RANGE = (1.0, 4.0 / 3.0)


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
    """The rows the plan's train_on names; plans written before train_on existed read thumbs, else pairs."""
    train_on = ctx.hp.get("train_on") or ("thumbs" if ctx.split.train_unpaired else "unpaired_pairs")
    try:
        return unpaired_training_rows(ctx.split.train_unpaired, ctx.split.train_pairs, train_on)
    except ValueError as e:
        raise DataError(f"the plan's {e}; plan again (`alignloop plan`)") from None


def kto_order(labels: list[bool], total: int, seed: int, lengths: list[int] | None = None,
              batch_size: int = 1) -> list[int]:
    """Row indices for `total` row visits: seeded epochs whose labels are spread evenly.

    Each epoch shuffles the desirable and the undesirable rows apart, then deals them out so that its
    first k rows hold floor(k * n_desirable / n) desirable ones. Every batch then mixes both labels
    (KTO's KL estimate pairs each prompt with another row's answer in the batch), and the rows the
    steps read follow from the counts alone (`alignloop.planner.kto_read_counts`), as the plan states.

    With `lengths`, batches of `batch_size` are grouped by length without moving a label: inside
    windows of whole batches of one epoch, the up rows (and, apart, the down rows) are sorted by
    length and handed out to the window's batches in a seeded random order, each batch taking the
    next ones for its up (down) places. A batch then holds ups of similar length and downs of similar
    length, so it pads little, while every place keeps its label and every row its epoch.
    """
    if not labels:
        return []
    rng = random.Random(seed)
    n, n_up = len(labels), sum(labels)
    order: list[int] = []
    while len(order) < total:
        ups = [i for i, label in enumerate(labels) if label]
        downs = [i for i, label in enumerate(labels) if not label]
        rng.shuffle(ups)
        rng.shuffle(downs)
        for k in range(n):
            is_up = (k + 1) * n_up // n > k * n_up // n
            order.append(ups.pop() if is_up else downs.pop())
    order = order[:total]
    if lengths is not None and batch_size > 1:
        _group_by_length(order, labels, lengths, batch_size, n, rng)
    return order


def _group_by_length(order: list[int], labels: list[bool], lengths: list[int], batch_size: int, n: int,
                     rng: random.Random) -> None:
    """Regroup `order` in place: see kto_order. A batch that straddles two epochs is left as it is."""
    window: list[tuple[int, int]] = []

    def flush() -> None:
        if len(window) < 2:
            return
        places = [p for lo, hi in window for p in range(lo, hi)]
        by_label = {flag: sorted((order[p] for p in places if bool(labels[order[p]]) is flag),
                                 key=lambda i: (lengths[i], i)) for flag in (True, False)}
        slots = [[bool(labels[order[p]]) for p in range(lo, hi)] for lo, hi in window]
        taken = {True: 0, False: 0}
        for b in rng.sample(range(len(window)), len(window)):
            lo, _ = window[b]
            for k, flag in enumerate(slots[b]):
                order[lo + k] = by_label[flag][taken[flag]]
                taken[flag] += 1

    for lo in range(0, len(order), batch_size):
        hi = min(lo + batch_size, len(order))
        if lo // n != (hi - 1) // n:          # straddles an epoch boundary
            flush()
            window = []
            continue
        if window and (window[0][0] // n != lo // n or len(window) == LENGTH_GROUP_WINDOW):
            flush()
            window = []
        window.append((lo, hi))
    flush()


def build_kto(ctx: BuildContext) -> Built:
    from datasets import Dataset
    from trl import KTOConfig

    hp = dict(ctx.hp)
    rows = _unpaired_rows(ctx)
    if len(rows) < 2:
        raise DataError("KTO needs at least 2 training rows")
    tokenized = tokenize_unpaired(ctx.tokenizer, rows, tokenizer_fingerprint(ctx.base_dir), ctx.cache_dir)
    fitted = fit_rows(tokenized, hp.get("max_length"), ctx.max_length_cap, hp.get("max_length_reason"))
    # Grouped by length inside each label: in thumbs data length often follows the label, and a batch of
    # one label would skew KTO's per-batch KL estimate, so every place keeps the label the dealing gave it.
    batch = int(hp["per_device_batch_size"])
    lengths = [len(r["prompt_ids"]) + len(r["completion_ids"]) for r in fitted.rows]
    order = kto_order([r["label"] for r in fitted.rows], ctx.rows_per_run, hp["seed"], lengths, batch)
    read = [fitted.rows[i] for i in order]
    n_up = sum(r["label"] for r in read)
    n_down = len(read) - n_up
    real, computed = padded_tokens(fitted.rows, order, batch, ("completion_ids",))
    notes = [fitted.max_length_reason, fitted.truncation.describe(),
             f"batches grouped by length within each label: {computed - real} pad tokens of {computed} computed "
             f"({100 * (computed - real) / max(computed, 1):.1f}%)"]
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
    trainer, kind = policy_trainer(kto_trainer_class(), ctx, hp, args, dataset)
    tokens = sum(len(r["prompt_ids"]) + len(r["completion_ids"]) for r in read)
    return Built(trainer=trainer, n_train=len(fitted.rows), data_fingerprint=dataset_fingerprint(fitted.rows, order),
                 max_length=fitted.max_length, max_length_reason=fitted.max_length_reason,
                 truncation=vars(fitted.truncation), tokens_trained=tokens, notes=notes,
                 hyperparameters={"desirable_weight": dw, "undesirable_weight": uw},
                 kind=kind)

