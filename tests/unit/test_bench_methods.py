"""`alignloop bench methods --quick --json`: real measurements in the documented structure."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from alignloop.benchmarks import methods
from alignloop.cli.main import app

pytestmark = pytest.mark.slow

INTERVAL = {"mean", "low", "high", "n"}


def test_quick_bench_prints_regret_with_intervals_for_the_planner_and_every_fixed_arm(tmp_path):
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["bench", "methods", "--quick", "--json", "--workers", "1",
                                      "--out", str(tmp_path)])
    seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    assert data["claim_set"] == "heldout" and data["heldout_seed"] == methods.HELDOUT_SEED
    assert set(data["planner_regret"]) == INTERVAL and data["planner_regret"]["n"] == methods.QUICK_DRAWS
    assert set(data["fixed_arm_regret"]) == set(data["planner_minus_fixed_arm"]) == set(methods.ARMS)
    assert all(set(v) == INTERVAL for v in data["fixed_arm_regret"].values())
    tuning, heldout = data["sets"]["tuning"], data["sets"]["heldout"]
    assert [r["name"] for r in tuning["regimes"]] == [r.name for r in methods.QUICK_REGIMES]
    assert [r["name"] for r in heldout["regimes"]] == [r.name for r in methods.heldout_regimes()[:methods.QUICK_DRAWS]]
    seeds = len(methods.QUICK_BUDGET.seeds)
    for regime, r in zip(methods.QUICK_REGIMES, tuning["regimes"], strict=True):
        assert set(r["accuracy"]) == set(methods.ARMS) == set(r["difference_from_best"])
        assert all(0.0 <= a <= 1.0 for a in r["accuracy"].values())
        assert all(len(v) == seeds for v in r["accuracy_by_seed"].values())
        # the planner's choice per seed is what choose_method makes of that seed's data
        assert r["planner_choice_by_seed"] == [methods.arm_of(methods.plan_for(regime, s)[1])
                                               for s in methods.QUICK_BUDGET.seeds]
        # its regret is the best arm's mean minus the accuracy of the arms it chose
        chosen = [r["accuracy_by_seed"][c][i] for i, c in enumerate(r["planner_choice_by_seed"])]
        assert r["planner_regret"] == pytest.approx(max(r["accuracy"].values()) - sum(chosen) / seeds, abs=1e-3)
    # measurements, not constants: seeds and arms give different accuracies somewhere
    by_seed = [tuple(v) for s in (tuning, heldout) for r in s["regimes"] for v in r["accuracy_by_seed"].values()]
    assert any(len(set(v)) > 1 for v in by_seed)
    assert (tmp_path / "methods.json").exists() and (tmp_path / "methods.png").stat().st_size > 1000
    written = (tmp_path / "methods.md").read_text()
    assert all(f"| {r['name']} |" in written for s in (tuning, heldout) for r in s["regimes"])
    assert seconds < 240, f"--quick took {seconds:.0f} s: CI runs it on every change"
    # no terminal here: progress comes as lines, the first job's and the last's, and no model-loading bars
    jobs = sum(len(methods.QUICK_BUDGET.seeds) for _ in (*tuning["regimes"], *heldout["regimes"]))
    assert "bench methods: 1/" in result.stderr and f"bench methods: {jobs}/{jobs} jobs done" in result.stderr
    assert "Loading weights" not in result.output


def test_an_unknown_set_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(app, ["bench", "methods", "--quick", "--set", "everything", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "--set" in result.output and "tuning, heldout, both" in result.output
    assert "Traceback" not in result.output


RESULTS = methods.__file__.rsplit("/", 1)[0] + "/results"


def test_pooling_saved_draws_summarises_every_held_out_regime_once(tmp_path):
    from pathlib import Path

    files = sorted(Path(RESULTS).glob("methods*.json"))
    files = [f for f in files if f.name != "methods_trl.json"]
    per_file = [json.loads(f.read_text())["sets"]["heldout"]["regimes"] for f in files]
    result = CliRunner().invoke(app, ["bench", "methods", "--json", *[a for f in files for a in ("--pool", str(f))]])
    assert result.exit_code == 0, result.output
    pooled = json.loads(result.stdout)
    regret = [r["planner_regret"] for rows in per_file for r in rows]
    assert pooled["summary"]["n_regimes"] == len(regret) == sum(d["regimes"] for d in pooled["draws"])
    assert len(files) >= 4 and pooled["summary"]["planner_regret"]["mean"] == pytest.approx(sum(regret) / len(regret),
                                                                                             abs=1e-3)
    ipo = [r["planner_regret"] - r["regret"]["ipo"] for rows in per_file for r in rows]
    assert pooled["summary"]["planner_minus_fixed_arm"]["ipo"]["mean"] == pytest.approx(sum(ipo) / len(ipo), abs=1e-3)
    # a draw passed twice would count its regimes twice: refused in one line
    twice = CliRunner().invoke(app, ["bench", "methods", "--pool", str(files[0]), "--pool", str(files[0])])
    assert twice.exit_code != 0 and "pass each draw once" in twice.output and "Traceback" not in twice.output
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    refused = CliRunner().invoke(app, ["bench", "methods", "--pool", str(bad)])
    assert refused.exit_code != 0 and "--pool:" in refused.output and "Traceback" not in refused.output
