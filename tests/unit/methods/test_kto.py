"""The `kto` method: thumbs up/down rows on TRL's KTOTrainer."""

from __future__ import annotations

import pytest

from tests.unit.methods.training import trains_saves_and_evaluates

pytestmark = pytest.mark.slow


def test_kto_asked_for_on_thumbs_trains_saves_and_evaluates(tmp_path, tiny_dir):
    trains_saves_and_evaluates(tmp_path, tiny_dir, "thumbs", {"method": "kto"}, "kto", "lora")
