"""The `rlhf` method: a reward model on the pairs, then RLOO against it, one progress scale for both."""

from __future__ import annotations

import pytest

from tests.unit.methods.training import trains_saves_and_evaluates

pytestmark = pytest.mark.slow


def test_rlhf_asked_for_and_affordable_trains_its_reward_model_then_the_policy(tmp_path, tiny_dir):
    trains_saves_and_evaluates(tmp_path, tiny_dir, "pairs", {"method": "rlhf"}, "rlhf", "lora")
