"""Fixtures for the per-method tests: the tiny offline model."""

from __future__ import annotations

from pathlib import Path

import pytest

from alignloop.config import BaseModelSettings
from alignloop.models import resolve_base_model
from tests.shared_builds import model_cache


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return resolve_base_model(BaseModelSettings(tiny=True), model_cache())
