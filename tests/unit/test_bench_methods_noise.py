"""`alignloop bench noise` on real votes: QA-Feedback's six votes a question, with flips injected on top."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alignloop.benchmarks.noise_check import read_qa_feedback, real_votes_check
from alignloop.profile.noise import flip_from_cycles, from_triads, zero_count_upper

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
QA = DATA / "qa-feedback" / "dev_feedback.json"


def test_votes_are_read_in_the_files_pair_order_with_ties_kept_as_ties():
    raw = json.loads(QA.read_text())
    questions = read_qa_feedback(QA)
    assert len(questions) == len(raw)
    first, votes = raw[0], questions[0]["votes"]
    expected = {1: 0, 2: 1, 0: None}
    # the first three votes compare answer 1 with answers 2, 3 and 4
    assert [(i, j) for i, j, _ in votes[:3]] == [(0, 1), (0, 2), (0, 3)]
    assert [w if w is None else (0 if w == i else 1) for i, _, w in votes] == [expected[p] for p in first["preference"]]
    assert sum(w is None for q in questions for _, _, w in q["votes"]) == sum(p == 0 for q in raw for p in q["preference"])


def test_a_bad_file_is_a_one_line_error_naming_the_fix(tmp_path):
    bad = tmp_path / "dev_feedback.json"
    bad.write_text(json.dumps([{"question": "q"}]))
    with pytest.raises(ValueError, match="pass --data"):
        read_qa_feedback(bad)


def test_no_cycle_at_all_still_leaves_an_upper_bound():
    est = from_triads([[4, 0]] * 400)
    assert est.flip_rate == 0.0 and est.low == 0.0
    assert est.high == pytest.approx(flip_from_cycles(zero_count_upper(400))) and 0 < est.high < 0.01


@pytest.mark.slow
def test_the_votes_own_agreement_recovers_flips_injected_into_real_votes():
    check = real_votes_check(DATA, injected=(0.0, 0.25), without_votes=False)
    clean, noisy = check["rows"]
    assert clean["triads"]["flip_rate"] == pytest.approx(0.0, abs=0.01) and clean["triads"]["high"] > 0
    t = noisy["triads"]
    assert t["low"] <= noisy["true_share"] <= t["high"] and t["high"] - t["low"] < 0.15
    assert noisy["profile_rests_on"] == "intransitive_triads"
    # where the deciding signal is not in the answers' words, the reward model says so instead of guessing
    assert clean["reward_model"]["verdict"] != "noisy" and noisy["reward_model"]["verdict"] != "noisy"
