"""The promotion gate as a pure function: which numbers pass, fail or count as unmeasured, and why.

Every comparison decides by its 95% interval, on enough prompts; a candidate identical to what it
replaces never passes; the champion is compared on the challenger's own set; and promotion under
settings looser than the version's recorded ones is refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from alignloop.config import PromotionSettings
from alignloop.evaluation.bootstrap import TooFewClusters, cluster_bootstrap
from alignloop.gate import (
    FAIL,
    PASS,
    UNMEASURED,
    Champion,
    decide,
    input_from_report,
    input_from_rows,
    looser_settings,
    registry_check,
    report_tags,
    verdict_tags,
)
from tests.unit.eval_reports import eval_report

DEFAULTS = PromotionSettings()


def _decide(report, champion=None, **settings):
    return decide(input_from_report(report, champion), PromotionSettings(**settings) if settings else DEFAULTS)


def _noop_report(**kw):
    """What evaluation measures for a candidate identical to the reference: every difference exactly 0,
    every judged answer a tie."""
    return eval_report(delta=(0.0, 0.0, 0.0), kl=(0.0, 0.0, 0.0), ppl_rise=(0.0, 0.0, 0.0),
                       length_ratio=(1.0, 1.0, 1.0), degenerate_delta=(0.0, 0.0, 0.0),
                       win_rate=(0.5, 0.5, 0.5), **kw)


def test_a_clear_gain_with_no_champion_passes_every_default_check():
    verdict = _decide(eval_report(delta=(0.06, 0.02, 0.10)))
    assert verdict.verdict == PASS and verdict.passed
    assert verdict.lines == [
        "pass: no champion yet; evaluated on set set-a",
        "pass: candidate − reference preference accuracy: +0.060 95% CI [+0.020, +0.100] on 40 prompts; "
        "lower bound +0.020 > +0.010 (promotion.min_gain_ci_low)",
        "pass: perplexity rise on the capability text: +2.0% 95% CI [+0.0%, +4.0%]; upper bound +4.0% < +10.0% "
        "(promotion.max_ppl_rise)",
        "pass: degenerate answers, candidate − reference share: +0.0% 95% CI [-5.0%, +5.0%]; upper bound +5.0% < "
        "+10.0% (promotion.max_degenerate_rise)",
        "pass: judged win rate over the reference: 0.620 95% CI [0.520, 0.720] on 32 prompts, greedy answers; "
        "lower bound 0.520 > 0.500 (promotion.min_judge_win_rate)",
    ]


def test_a_no_op_candidate_identical_to_the_reference_is_never_a_pass():
    verdict = _decide(_noop_report())
    assert verdict.verdict == FAIL
    assert any(line.startswith("fail: candidate − reference preference accuracy") and "lower bound +0.000 ≤ +0.010"
               in line for line in verdict.lines)
    assert any(line.startswith("fail: judged win rate") and "lower bound 0.500 ≤ 0.500" in line
               for line in verdict.lines)


@hsettings(max_examples=150, deadline=None)
@given(gain=st.one_of(st.none(), st.floats(0.0, 1.0)), win=st.one_of(st.none(), st.floats(0.5, 1.0)),
       ppl=st.one_of(st.none(), st.floats(0.0, 5.0)), kl=st.one_of(st.none(), st.floats(0.0, 5.0)),
       drift=st.one_of(st.none(), st.floats(0.0, 2.0)), degenerate=st.one_of(st.none(), st.floats(0.0, 1.0)),
       min_prompts=st.integers(1, 40), require_judge=st.booleans(), judge=st.sampled_from([True, False, None]))
def test_no_valid_setting_lets_a_no_op_candidate_pass(gain, win, ppl, kl, drift, degenerate, min_prompts,
                                                        require_judge, judge):
    settings = PromotionSettings(min_gain_ci_low=gain, min_judge_win_rate=win, max_ppl_rise=ppl,
                                 max_kl_reference=kl, max_length_drift=drift, max_degenerate_rise=degenerate,
                                 min_prompts=min_prompts, require_usable_judge=require_judge)
    assert decide(input_from_report(_noop_report(judge_usable=judge), None), settings).verdict != PASS
    champion = Champion(2)
    same_as_champion = _noop_report(judge_usable=judge, champion_version=2, champion_delta=(0.0, 0.0, 0.0))
    assert decide(input_from_report(same_as_champion, champion), settings).verdict != PASS


def test_two_wins_in_four_judged_prompts_is_unmeasured_not_a_pass():
    with pytest.raises(TooFewClusters, match="4 prompts"):
        cluster_bootstrap([1.0, 1.0, 0.0, 0.0], ["a", "b", "c", "d"])
    report = eval_report(win_rate=(0.5, 0.0, 1.0), generation_prompts=4, kl=None, length_ratio=None,
                         degenerate_delta=None)
    verdict = _decide(report)
    assert verdict.verdict == UNMEASURED
    assert ("unmeasured: judged win rate over the reference: measured on 4 prompts, fewer than promotion.min_prompts "
            "(30)") in "\n".join(verdict.lines)


def test_a_gain_on_too_few_prompts_is_unmeasured_however_large():
    verdict = _decide(eval_report(delta=(0.4, 0.3, 0.5), prompts=12))
    assert verdict.verdict == UNMEASURED
    assert any(line.startswith("unmeasured: candidate − reference preference accuracy: measured on 12 prompts")
               for line in verdict.lines)
    assert _decide(eval_report(delta=(0.4, 0.3, 0.5), prompts=12), min_prompts=10).verdict == PASS


def test_a_point_estimate_above_the_bound_with_its_interval_reaching_below_it_is_not_a_pass():
    assert _decide(eval_report(win_rate=(0.62, 0.45, 0.78))).verdict == FAIL  # judged: lower bound ≤ 0.5
    assert _decide(eval_report(delta=(0.02, 0.005, 0.04))).verdict == FAIL   # gain: lower bound ≤ +0.01
    verdict = _decide(eval_report(ppl_rise=(0.08, 0.05, 0.12)))              # guard: upper bound ≥ 10%
    assert verdict.verdict == FAIL
    assert "fail: perplexity rise on the capability text: +8.0% 95% CI [+5.0%, +12.0%]; upper bound +12.0% ≥ " \
           "+10.0%" in "\n".join(verdict.lines)


def test_a_flipped_label_candidate_whose_interval_lies_below_zero_fails():
    verdict = _decide(eval_report(delta=(-0.09, -0.14, -0.04), win_rate=0.31))
    assert verdict.verdict == FAIL and not verdict.passed
    failing = [line for line in verdict.lines if line.startswith("fail")]
    assert len(failing) == 2
    assert "lower bound -0.140 ≤ +0.010" in failing[0] and "0.310" in failing[1]


def test_the_gain_bound_is_strict_and_switching_it_off_leaves_the_judge_to_decide():
    report = eval_report(delta=(0.05, 0.01, 0.09))
    assert _decide(report).verdict == FAIL  # 0.01 is not above 0.01
    assert _decide(report, min_gain_ci_low=0.0).verdict == PASS
    assert _decide(report, min_gain_ci_low=None).verdict == PASS  # the judged win rate still compares
    nothing_compares = _decide(report, min_gain_ci_low=None, min_judge_win_rate=None)
    assert nothing_compares.verdict == UNMEASURED
    assert "no counted check compares the candidate" in nothing_compares.lines[-1]


def test_settings_that_would_let_a_no_op_pass_are_refused_by_the_config():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="min_gain_ci_low"):
        PromotionSettings(min_gain_ci_low=-0.02)
    with pytest.raises(ValidationError, match="min_judge_win_rate"):
        PromotionSettings(min_judge_win_rate=0.4)


def test_with_a_champion_the_champion_delta_decides_not_the_reference_delta():
    champion = Champion(version=3)
    worse_than_champion = eval_report(delta=(0.08, 0.04, 0.12), champion_version=3, champion_delta=(-0.03, -0.06, -0.01))
    verdict = _decide(worse_than_champion, champion)
    assert verdict.verdict == FAIL
    assert any("candidate − champion (version 3)" in line and line.startswith("fail") for line in verdict.lines)
    better = eval_report(delta=(0.08, 0.04, 0.12), champion_version=3, champion_delta=(0.03, 0.015, 0.05))
    assert _decide(better, champion).verdict == PASS


def test_evaluated_against_an_older_champion_or_none_is_unmeasured():
    champion = Champion(version=4)
    stale = eval_report(champion_version=3, champion_delta=(0.03, 0.02, 0.05))
    assert _decide(stale, champion).verdict == UNMEASURED
    no_champion_then = eval_report()
    verdict = _decide(no_champion_then, champion)
    assert verdict.verdict == UNMEASURED
    assert verdict.lines[0] == ("unmeasured: evaluated against no champion, not the current champion (version 4); "
                                "evaluate again (alignloop run --force)")


def test_a_champion_scored_in_the_same_run_compares_on_a_new_set_and_only_other_pairs_are_unmeasured():
    # New prompts arrived since the champion was registered: its registration-time set does not matter,
    # it was scored again on the challenger's set in the challenger's run.
    champion = Champion(version=3)
    report = eval_report(set_hash="set-NEW", champion_version=3, champion_delta=(0.05, 0.02, 0.08))
    verdict = _decide(report, champion)
    assert verdict.verdict == PASS
    assert verdict.lines[0] == "pass: the champion (version 3) scored in the same run on the challenger's set set-NEW"
    elsewhere = eval_report(set_hash="set-NEW", champion_version=3, champion_delta=(0.05, 0.02, 0.08),
                            champion_set_hash="set-OLD")
    verdict = _decide(elsewhere, champion)
    assert verdict.verdict == UNMEASURED
    assert verdict.lines[0].startswith("unmeasured: the challenger was scored on set set-NEW, the champion (version 3) "
                                       "on set set-OLD")


def test_missing_interval_or_missing_guard_metric_is_unmeasured_not_passed():
    report = eval_report()
    del report["metrics"]["eval_pref_accuracy_delta_ci_low"]
    assert _decide(report).verdict == UNMEASURED
    assert _decide(eval_report(ppl_rise=None)).verdict == UNMEASURED
    assert _decide(eval_report(kl=None), max_kl_reference=2.0).verdict == UNMEASURED
    no_count = eval_report()
    del no_count["metrics"]["eval_prompts"]  # a report from before prompts were counted
    assert _decide(no_count).verdict == UNMEASURED


@pytest.mark.parametrize(("setting", "value", "report_kw"), [
    ("max_ppl_rise", 0.10, {"ppl_rise": 0.25}),
    ("max_kl_reference", 1.0, {"kl": 1.5}),
    ("max_length_drift", 0.5, {"length_ratio": 1.8}),
    ("max_degenerate_rise", 0.1, {"degenerate_delta": (0.2, 0.1, 0.3)}),
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


def test_the_verdict_carries_the_settings_that_decided_it_and_their_hash():
    verdict = _decide(eval_report(), min_prompts=32)
    assert verdict.settings["min_prompts"] == 32 and "lock_wait_s" not in verdict.settings
    assert verdict.settings_hash == PromotionSettings(min_prompts=32).gate_hash() != DEFAULTS.gate_hash()
    tags = verdict_tags(verdict)
    assert json.loads(tags["gate.settings"]) == verdict.settings and tags["gate.settings_hash"] == verdict.settings_hash
    # How promotion is carried out does not change the rules: same hash.
    assert PromotionSettings(auto_promote=True, lock_wait_s=5).gate_hash() == DEFAULTS.gate_hash()


def _row(report, verdict, version=3):
    tags = {f"alignloop.{k}": v for k, v in {**report_tags(report), **verdict_tags(verdict)}.items()}
    return {"version": version, "tags": tags, "metrics": report["metrics"]}


def test_the_verdict_recomputed_from_registry_tags_equals_the_one_from_the_report():
    report = eval_report(champion_version=2, champion_delta=(0.01, -0.02, 0.04))
    from_report = _decide(report, Champion(2))
    from_rows = decide(input_from_rows(_row(report, from_report), {"version": 2, "tags": {}}), DEFAULTS)
    assert from_rows == from_report and from_rows.verdict == FAIL


def test_promotion_under_settings_looser_than_the_recorded_ones_fails_and_names_them():
    report = eval_report(delta=(0.06, 0.02, 0.10))
    row = _row(report, _decide(report))
    assert registry_check(DEFAULTS)(row, None).verdict == PASS
    assert registry_check(PromotionSettings(min_prompts=32, max_ppl_rise=0.05))(row, None).verdict == PASS  # stricter
    loosened = registry_check(PromotionSettings(min_gain_ci_low=None, max_ppl_rise=0.5))(row, None)
    assert loosened.verdict == FAIL
    assert loosened.lines[-1].startswith("fail: the settings now are looser than the ones it was registered under (")
    assert "min_gain_ci_low 0.01 → null; max_ppl_rise 0.1 → 0.5" in loosened.lines[-1]
    unrecorded = dict(row, tags={k: v for k, v in row["tags"].items() if not k.startswith("alignloop.gate.settings")})
    assert registry_check(DEFAULTS)(unrecorded, None).verdict == UNMEASURED


def test_looser_means_a_lower_minimum_a_higher_maximum_a_check_switched_off_or_a_requirement_dropped():
    recorded = PromotionSettings(max_kl_reference=2.0, require_usable_judge=True).gate_values()
    assert looser_settings(recorded, recorded) == []
    assert looser_settings({**recorded, "min_judge_win_rate": 0.6, "max_kl_reference": 1.0}, recorded) == []
    assert looser_settings({**recorded, "min_prompts": 10}, recorded) == ["min_prompts 30 → 10"]
    assert looser_settings({**recorded, "max_kl_reference": None}, recorded) == ["max_kl_reference 2.0 → null"]
    assert looser_settings({**recorded, "require_usable_judge": False}, recorded) == [
        "require_usable_judge true → false"]
    # A check that was off at registration cannot be loosened.
    assert looser_settings({**recorded, "max_length_drift": 3.0}, recorded) == []
