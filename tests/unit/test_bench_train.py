"""`alignloop bench train` on the tiny model: both trainings run, on the same pairs, and the JSON holds the ratios."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from alignloop.cli.main import app

pytestmark = pytest.mark.slow


def test_bench_train_json_compares_both_runs_on_the_same_pairs(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))          # the model cache lands in the test's folder
    result = CliRunner().invoke(app, ["bench", "train", "--model", "tiny", "--steps", "1", "--batch", "2", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    a, p = figures["alignloop"], figures["plain_trl"]
    assert a["rows_kept"] == p["rows_kept"] == figures["pairs"] == 2       # nothing dropped on either side
    assert figures["tokens_per_s_ratio"] == pytest.approx(a["tokens_per_s"] / p["tokens_per_s"])
    assert figures["peak_memory_ratio"] == pytest.approx(a["peak_memory_bytes"] / p["peak_memory_bytes"])
    assert a["tokens_per_s"] == pytest.approx(figures["tokens"] / a["wall_s"])
    assert figures["runs"]["alignloop"][0]["tokens_trained"] == figures["tokens"]   # both count the same tokens
