"""The `ipo` method: pairs on TRL's DPOTrainer with the ipo loss."""

from __future__ import annotations

import pytest

from tests.unit.methods.training import trains_saves_and_evaluates

pytestmark = pytest.mark.slow


def test_ipo_asked_for_on_pairs_trains_saves_and_evaluates(tmp_path, tiny_dir):
    trains_saves_and_evaluates(tmp_path, tiny_dir, "pairs", {"method": "ipo"}, "ipo", "lora")
