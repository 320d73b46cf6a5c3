"""KTO trains on exactly the rows the plan's train_on names, and the plan states the weights TRL will check
on the rows its steps read."""

from __future__ import annotations

from pathlib import Path

import pytest

from alignloop.config import PlanningSettings, TrainingSettings
from alignloop.datasets import Split
from alignloop.planner import Plan, choose_method, kto_read_counts, kto_weights
from alignloop.training.builders import BuildContext
from alignloop.training.common import RunOptions
from alignloop.training.kto import _unpaired_rows, kto_order, trl_accepts_weights
from tests.unit.test_planner import shape

THUMBS = [{"prompt": [{"role": "user", "content": f"q{i}"}], "completion": f"thumbed {i}", "label": i < 3}
          for i in range(40)]                                     # one-sided: 3 up, 37 down
PAIRS = [{"prompt": [{"role": "user", "content": f"p{i}"}], "chosen": f"good {i}", "rejected": f"bad {i}"}
         for i in range(300)]


def _ctx(plan: Plan, split: Split) -> BuildContext:
    return BuildContext(plan, split, Path("."), Path("."), RunOptions(), None, tokenizer=None)


def test_kto_on_unpaired_pairs_reads_no_thumbs():
    # Thumbs too one-sided for KTO, pairs enough: the plan says "each pair as one up and one down answer".
    plan = choose_method(shape(300, up=3, down=37), TrainingSettings(method="kto"), PlanningSettings())
    assert plan.method == "kto" and plan.hyperparameters["train_on"] == "unpaired_pairs"
    rows = _unpaired_rows(_ctx(plan, Split(THUMBS, PAIRS, [], [])))
    assert not [r for r in rows if r["completion"].startswith("thumbed")]
    assert len(rows) == 2 * len(PAIRS) and sum(r["label"] for r in rows) == len(PAIRS)
    assert plan.hyperparameters["desirable_weight"] == plan.hyperparameters["undesirable_weight"] == 1.0


def test_kto_on_thumbs_and_unpaired_pairs_reads_both():
    thumbs = [{**t, "label": i % 2 == 0} for i, t in enumerate(THUMBS)]
    hp = {"train_on": "thumbs+unpaired_pairs"}
    rows = _unpaired_rows(_ctx(Plan("kto", hp, ()), Split(thumbs, PAIRS[:5], [], [])))
    assert len(rows) == len(thumbs) + 10 and sum(r["label"] for r in rows) == 20 + 5


@pytest.mark.parametrize("up,down,steps,batch", [(125, 75, 3, 4), (300, 100, 10, 8), (14, 180, 40, 4), (200, 200, 9, 2)])
def test_the_plan_states_the_weights_of_the_rows_kto_steps_read(up, down, steps, batch):
    plan = choose_method(shape(0, up, down), TrainingSettings(max_steps=steps, per_device_batch_size=batch),
                         PlanningSettings(min_minority_share=0.0))
    hp = plan.hyperparameters
    assert plan.method == "kto" and hp["train_on"] == "thumbs"
    order = kto_order([True] * up + [False] * down, steps * batch, seed=hp["seed"])
    read_up = sum(i < up for i in order)
    read_down = len(order) - read_up
    assert (read_up, read_down) == kto_read_counts(up, down, steps * batch)
    assert (hp["desirable_weight"], hp["undesirable_weight"]) == kto_weights(read_up, read_down)
    assert trl_accepts_weights(read_up, read_down, hp["desirable_weight"], hp["undesirable_weight"])
    assert any(f"x {read_up} up" in r and f"x {read_down} down" in r for r in plan.reasons)


def test_kto_order_spreads_labels_into_every_batch_and_covers_each_epoch():
    labels = [True] * 10 + [False] * 30
    order = kto_order(labels, 80, seed=1)
    assert sorted(order[:40]) == list(range(40)) and sorted(order[40:]) == list(range(40))
    assert all(any(labels[i] for i in order[k:k + 4]) for k in range(0, 80, 4))
    assert order != kto_order(labels, 80, seed=2)


def test_the_plan_says_when_a_row_cap_hides_the_up_down_split_it_weights():
    capped = choose_method(shape(0, 300, 100), TrainingSettings(max_train_examples=50), PlanningSettings())
    assert any("max_train_examples 50" in r and "re-sets the KTO weights" in r for r in capped.reasons)
    uncapped = choose_method(shape(0, 300, 100), TrainingSettings(), PlanningSettings())
    assert not any("max_train_examples" in r for r in uncapped.reasons)


@pytest.mark.parametrize("up,down,total,batch,share", [(10, 30, 80, 4, 0.6), (37, 23, 150, 4, 0.6),
                                                        (200, 20, 440, 8, 0.6), (5, 5, 30, 3, 1.0)])
def test_kto_batches_grouped_by_length_keep_every_label_and_epoch_and_pad_far_less(up, down, total, batch, share):
    """share: the most of the plain order's padding the grouped one may keep (10 rows in batches of 3: few
    whole-batch windows inside an epoch, so little to regroup)."""
    import random

    from alignloop.training.data import padded_tokens

    labels = [True] * up + [False] * down
    rng = random.Random(7)
    lengths = [rng.randint(20, 600) for _ in labels]
    plain = kto_order(labels, total, seed=3)
    grouped = kto_order(labels, total, seed=3, lengths=lengths, batch_size=batch)
    # Every place keeps its label, so the counts the plan states (kto_read_counts) are the same.
    assert [labels[i] for i in grouped] == [labels[i] for i in plain]
    # Every epoch still reads each row once.
    n = len(labels)
    for lo in range(0, total - n + 1, n):
        assert sorted(grouped[lo: lo + n]) == list(range(n))
    assert sorted(grouped) == sorted(plain)
    rows = [{"prompt_ids": [0] * 5, "completion_ids": [0] * (k - 5)} for k in lengths]
    real, computed_plain = padded_tokens(rows, plain, batch, ("completion_ids",))
    _, computed_grouped = padded_tokens(rows, grouped, batch, ("completion_ids",))
    assert computed_grouped < computed_plain and (computed_grouped - real) < share * (computed_plain - real)
    assert grouped == kto_order(labels, total, seed=3, lengths=lengths, batch_size=batch)
    # Labels read as 1/0 (as a store column may hold them) group the same way.
    assert grouped == kto_order([int(x) for x in labels], total, seed=3, lengths=lengths, batch_size=batch)
    assert grouped != kto_order(labels, total, seed=4, lengths=lengths, batch_size=batch)
