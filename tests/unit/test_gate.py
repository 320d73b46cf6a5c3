"""The promotion gate as a pure function: which numbers pass, fail or count as unmeasured, and why."""

from __future__ import annotations

import pytest

from alignloop.config import PromotionSettings
from alignloop.gate import FAIL, PASS, UNMEASURED, Champion, decide, input_from_report, input_from_rows, report_tags
from tests.unit.eval_reports import eval_report

DEFAULTS = PromotionSettings()


def _decide(report, champion=None, **settings):
    return decide(input_from_report(report, champion), PromotionSettings(**settings) if settings else DEFAULTS)


def test_a_clear_gain_with_no_champion_passes_every_default_check():
    verdict = _decide(eval_report(delta=(0.06, 0.02, 0.10)))
    assert verdict.verdict == PASS and verdict.passed
    assert verdict.lines == [
        "pass: no champion yet; evaluated on set set-a",
        "pass: candidate − reference preference accuracy: +0.060 95% CI [+0.020, +0.100]; lower bound +0.020 ≥ "
        "+0.000 (promotion.min_gain_ci_low)",
        "pass: perplexity rise on the capability text: +2.0% ≤ +10.0% (promotion.max_ppl_rise)",
        "pass: judged win rate over the reference: 0.620 (95% CI [0.520, 0.720]) ≥ 0.500 (promotion.min_judge_win_rate)",
    ]


def test_a_flipped_label_candidate_whose_interval_lies_below_zero_fails():
    verdict = _decide(eval_report(delta=(-0.09, -0.14, -0.04), win_rate=0.31))
    assert verdict.verdict == FAIL and not verdict.passed
    failing = [line for line in verdict.lines if line.startswith("fail")]
    assert len(failing) == 2
    assert "lower bound -0.140 < +0.000" in failing[0] and "0.310" in failing[1]


def test_an_interval_that_straddles_zero_fails_the_default_bound_but_passes_a_looser_one():
    report = eval_report(delta=(0.02, -0.01, 0.05))
    assert _decide(report).verdict == FAIL
    assert _decide(report, min_gain_ci_low=-0.02).verdict == PASS
    assert _decide(report, min_gain_ci_low=None).verdict == PASS  # the check switched off


def test_with_a_champion_the_champion_delta_decides_not_the_reference_delta():
    champion = Champion(version=3, eval_set_hash="set-a")
    worse_than_champion = eval_report(delta=(0.08, 0.04, 0.12), champion_version=3, champion_delta=(-0.03, -0.06, -0.01))
    verdict = _decide(worse_than_champion, champion)
    assert verdict.verdict == FAIL
    assert any("candidate − champion (version 3)" in line and line.startswith("fail") for line in verdict.lines)
    better = eval_report(delta=(0.08, 0.04, 0.12), champion_version=3, champion_delta=(0.03, 0.01, 0.05))
    assert _decide(better, champion).verdict == PASS


def test_evaluated_against_an_older_champion_or_none_is_unmeasured():
    champion = Champion(version=4, eval_set_hash="set-a")
    stale = eval_report(champion_version=3, champion_delta=(0.03, 0.01, 0.05))
    assert _decide(stale, champion).verdict == UNMEASURED
    no_champion_then = eval_report()
    verdict = _decide(no_champion_then, champion)
    assert verdict.verdict == UNMEASURED
    assert any("evaluated against no champion, not the current champion" in line for line in verdict.lines)


def test_another_eval_set_than_the_champions_is_unmeasured_even_with_good_numbers():
    champion = Champion(version=3, eval_set_hash="set-OLD")
    report = eval_report(set_hash="set-NEW", champion_version=3, champion_delta=(0.05, 0.02, 0.08))
    verdict = _decide(report, champion)
    assert verdict.verdict == UNMEASURED
    assert verdict.lines[0].startswith("unmeasured: evaluated on set set-NEW, the champion (version 3) on set set-OLD")


def test_missing_interval_or_missing_guard_metric_is_unmeasured_not_passed():
    report = eval_report()
    del report["metrics"]["eval_pref_accuracy_delta_ci_low"]
    assert _decide(report).verdict == UNMEASURED
    assert _decide(eval_report(ppl_rise=None)).verdict == UNMEASURED
    assert _decide(eval_report(kl=None), max_kl_reference=2.0).verdict == UNMEASURED


@pytest.mark.parametrize(("setting", "value", "report_kw"), [
    ("max_ppl_rise", 0.10, {"ppl_rise": 0.25}),
    ("max_kl_reference", 1.0, {"kl": 1.5}),
    ("max_length_drift", 0.5, {"length_ratio": 1.8}),
])
def test_each_guard_fails_when_its_limit_is_exceeded(setting, value, report_kw):
    verdict = _decide(eval_report(**report_kw), **{setting: value})
    assert verdict.verdict == FAIL
    assert any(line.startswith("fail") and f"promotion.{setting}" in line for line in verdict.lines)


def test_an_unusable_judge_is_left_out_unless_required():
    report = eval_report(judge_usable=False)
    verdict = _decide(report)
    assert verdict.verdict == PASS
    assert "skip: judged win rate: not counted, the judge is unusable (its held-out accuracy 0.520)" in verdict.lines[-1]
    assert _decide(report, require_usable_judge=True).verdict == UNMEASURED
    assert _decide(eval_report(judge_usable=None), require_usable_judge=True).verdict == UNMEASURED


def test_the_verdict_recomputed_from_registry_tags_equals_the_one_from_the_report():
    champion_row = {"version": 2, "tags": {"alignloop.eval_set_hash": "set-a"}}
    report = eval_report(champion_version=2, champion_delta=(0.01, -0.02, 0.04))
    tags = {f"alignloop.{k}": v for k, v in report_tags(report).items()}
    row = {"version": 3, "tags": tags, "metrics": report["metrics"]}
    from_rows = decide(input_from_rows(row, champion_row), DEFAULTS)
    from_report = _decide(report, Champion(2, "set-a"))
    assert from_rows == from_report and from_rows.verdict == FAIL
