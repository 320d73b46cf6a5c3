"""The `dpo` method: pairs on TRL's DPOTrainer; on noisy pairs the same method with the robust loss."""

from __future__ import annotations

from pathlib import Path

import pytest
from trl import DPOTrainer

from alignloop.datasets import split_snapshot
from alignloop.methods import METHODS
from alignloop.models import load_tokenizer
from alignloop.planner import Plan
from alignloop.training.builders import BuildContext
from alignloop.training.common import RunOptions
from tests.unit.methods.training import feedback, trains_saves_and_evaluates

pytestmark = pytest.mark.slow


def test_pairs_asked_for_dpo_plan_dpo_which_trains_saves_and_evaluates(tmp_path, tiny_dir):
    # Left to itself the planner trains IPO on pairs (bench methods); DPO is asked for by name.
    trains_saves_and_evaluates(tmp_path, tiny_dir, "pairs", {"method": "dpo"}, "dpo", "lora")


def test_a_robust_dpo_plan_reaches_trl_with_its_loss_and_label_smoothing(tmp_path, tiny_dir):
    """Noisy pairs keep the method `dpo` and change its loss: the registered builder passes both on."""
    unpaired, pairs = feedback("pairs")
    hp = {"max_steps": 2, "learning_rate": 1e-3, "beta": 0.1, "per_device_batch_size": 2,
          "gradient_accumulation_steps": 1, "max_length": 64, "seed": 0, "lora": None, "train_on": "pairs",
          "loss_type": ["robust"], "label_smoothing": 0.2}
    ctx = BuildContext(Plan("dpo", hp, ("test",)), split_snapshot(unpaired, pairs, 0.3), Path(tiny_dir), tmp_path,
                       RunOptions(device="cpu"), None, load_tokenizer(tiny_dir))
    built = METHODS["dpo"].load_builder()(ctx)
    assert isinstance(built.trainer, DPOTrainer)
    assert built.trainer.args.loss_type == ["robust"]
    assert built.trainer.args.label_smoothing == 0.2
