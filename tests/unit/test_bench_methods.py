"""`alignloop bench methods --quick --json`: real measurements in the documented structure."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from alignloop.benchmarks import methods
from alignloop.cli.main import app

pytestmark = pytest.mark.slow


def test_quick_bench_prints_measured_accuracies_and_the_planners_choice(tmp_path):
    result = CliRunner().invoke(app, ["bench", "methods", "--quick", "--json", "--workers", "1",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    assert [r["name"] for r in data["regimes"]] == [r.name for r in methods.QUICK_REGIMES]
    seeds = len(methods.QUICK_BUDGET.seeds)
    for regime, r in zip(methods.QUICK_REGIMES, data["regimes"], strict=True):
        assert set(r["accuracy"]) == set(methods.ARMS) == set(r["spread"])
        assert all(0.0 <= a <= 1.0 for a in r["accuracy"].values())
        assert all(len(v) == seeds for v in r["accuracy_by_seed"].values())
        # the planner's choice is what choose_method makes of this regime's shape
        _, plan = methods.plan_for(regime, methods.QUICK_BUDGET.seeds[0])
        assert r["planner_choice"] == methods.arm_of(plan)
    # measurements, not constants: seeds and arms give different accuracies somewhere
    by_seed = [tuple(v) for r in data["regimes"] for v in r["accuracy_by_seed"].values()]
    assert any(len(set(v)) > 1 for v in by_seed)
    assert len({a for r in data["regimes"] for a in r["accuracy"].values()}) > 2
    assert (tmp_path / "methods.json").exists() and (tmp_path / "methods.png").stat().st_size > 1000
