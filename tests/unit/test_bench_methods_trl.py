"""`alignloop bench methods --trainer trl`: the compact loop's arms cross-checked with TRL's own trainers."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from alignloop.benchmarks.methods import ARMS, Budget
from alignloop.benchmarks.methods_trl import summarise_cross_check, train_regime_trl
from alignloop.benchmarks.regimes import Regime
from alignloop.cli.main import app


def test_the_cross_check_trains_each_arm_with_trls_own_trainer(tmp_path):
    from alignloop.models import build_tiny_model

    base = build_tiny_model(tmp_path / "tiny")
    rows = train_regime_trl(str(base), Regime("clean_pairs", n_pairs=40), 0,
                            Budget(steps=2, pairs_per_step=2, heldout=8, seeds=(0,)), smoothing=0.1)
    by_arm = {r["arm"]: r for r in rows}
    assert set(by_arm) == set(ARMS)
    assert {a: r["trainer"] for a, r in by_arm.items()} == {
        "dpo": "trl.trainer.dpo_trainer.DPOTrainer", "ipo": "trl.trainer.dpo_trainer.DPOTrainer",
        "robust_dpo": "trl.trainer.dpo_trainer.DPOTrainer", "kto": "trl.trainer.kto_trainer.KTOTrainer"}
    # read back from each trainer's own args: the loss TRL computed
    assert [by_arm[a]["loss_type"] for a in ("dpo", "ipo", "robust_dpo")] == [["sigmoid"], ["ipo"], ["robust"]]
    assert by_arm["robust_dpo"]["label_smoothing"] == 0.1 and by_arm["dpo"]["label_smoothing"] == 0.0
    assert all(r["steps"] == 2 and r["final_loss"] is not None for r in rows)


def _rows(impl: str, acc: dict[str, list[float]]) -> list[dict]:
    return [{"regime": "r", "seed": s, "arm": arm, "implementation": impl, "accuracy": a, "seconds": 1.0,
             "trainer": "trl.X" if impl == "trl" else None}
            for arm, values in acc.items() for s, a in enumerate(values)]


@pytest.mark.parametrize("trl_kto,agree", [(0.70, True), (0.90, False)])
def test_the_cross_check_reports_whether_the_two_rankings_agree(trl_kto, agree):
    compact = {"dpo": [0.80, 0.80], "ipo": [0.70, 0.70], "robust_dpo": [0.79, 0.79], "kto": [0.70, 0.70]}
    trl = {**compact, "dpo": [0.81, 0.81], "kto": [trl_kto, trl_kto]}
    plans = {"r": (type("P", (), {"method": "dpo", "hyperparameters": {"loss_type": ["sigmoid"]}})(), 0.0)}
    out = summarise_cross_check([Regime("r")], plans, _rows("compact", compact) + _rows("trl", trl),
                                Budget(seeds=(0, 1)), 1.0)
    r = out["regimes"][0]
    assert r["best"]["compact"] == "dpo" and r["winners_agree"] is agree
    assert r["difference_trl_minus_compact"]["dpo"] == pytest.approx(0.01)
    assert r["planner_tied_or_best"] == {"compact": True, "trl": agree}


def test_an_unknown_trainer_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(app, ["bench", "methods", "--trainer", "plain", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--trainer" in result.output and "Traceback" not in result.output
