"""`alignloop bench outcome` on the real feedback files: the split never shares a prompt, ties stay ties, and the
--quick run prints per arm numbers that agree with each other and with pairs counted here independently."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from alignloop.benchmarks.outcome import QUICK_EVAL_PAIRS, OutcomeSetup, load_rows
from alignloop.benchmarks.outcome_data import (
    read_hh,
    read_qa_feedback,
    sample_pairs,
    split_of,
    split_pairs,
)
from alignloop.models import inference_precision, training_precision
from alignloop.schema import prompt_key

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def test_every_transcript_row_is_a_pair_or_left_out_with_its_reason():
    hh = read_hh(DATA / "hh-helpful")
    lines = 0
    for path in (DATA / "hh-helpful").glob("*.jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            lines += sum(1 for line in f if line.strip())
    assert hh.rows_read == lines == 6240
    assert len(hh.pairs) + sum(hh.left_out.values()) == lines
    assert hh.left_out["chosen and rejected final answers are identical"] == 36
    for p in hh.pairs[:200]:
        assert p["prompt"][-1]["role"] == "user" and p["chosen"] != p["rejected"]


def test_qa_feedback_ties_are_counted_and_never_become_pairs():
    qa = read_qa_feedback(DATA / "qa-feedback" / "dev_feedback.json")
    records = json.loads((DATA / "qa-feedback" / "dev_feedback.json").read_text())
    votes = Counter(v for r in records for v in r["preference"])
    assert qa.ties == votes[0] == 384
    assert len(qa.pairs) == votes[1] + votes[2] - sum(qa.left_out.values()) == 2616
    decided = {r["question"].strip() for r in records if any(v in (1, 2) for v in r["preference"])}
    assert all(len(p["prompt"]) == 1 and p["prompt"][0]["role"] == "user" for p in qa.pairs)
    assert {p["prompt"][0]["content"] for p in qa.pairs} == decided   # the question alone, never its passages


def test_a_prompt_lands_in_one_split_whichever_source_or_answer_it_comes_with():
    by_split = split_pairs([read_hh(DATA / "hh-helpful"), read_qa_feedback(DATA / "qa-feedback" / "dev_feedback.json")])
    seen: dict[str, str] = {}
    for name, pairs in by_split.items():
        for p in pairs:
            assert seen.setdefault(prompt_key(p["prompt"]), name) == name
    shares = {k: len(v) / sum(map(len, by_split.values())) for k, v in by_split.items()}
    assert 0.1 < shares["test"] < 0.2 and 0.1 < shares["validation"] < 0.2
    assert split_of([{"role": "user", "content": "x"}]) == split_of([{"role": "user", "content": "x"}])


def test_a_sample_takes_whole_prompts_and_a_larger_one_contains_it():
    pairs = split_pairs([read_qa_feedback(DATA / "qa-feedback" / "dev_feedback.json")])["train"]
    small, large = sample_pairs(pairs, 40), sample_pairs(pairs, 200)
    assert len(small) <= 40 and len(large) <= 200
    keys = {prompt_key(p["prompt"]) for p in small}
    assert keys <= {prompt_key(p["prompt"]) for p in large}
    assert sum(prompt_key(p["prompt"]) in keys for p in pairs) == len(small)   # every pair of a kept prompt


def majority_count(rows: list[dict]) -> int:
    """Distinct (prompt, two answers) with a strict majority of votes: counted here without alignloop's code."""
    tally: Counter = Counter()
    for r in rows:
        key = json.dumps(r["prompt"], sort_keys=True)
        a, b = sorted((r["chosen"], r["rejected"]))
        tally[(key, a, b)] += 1 if r["chosen"] == a else -1
    return sum(1 for v in tally.values() if v != 0)


@pytest.mark.slow
def test_quick_json_gives_every_arm_consistent_gains_on_the_pairs_it_says(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "HOME": os.environ.get("HOME", str(tmp_path))}
    proc = subprocess.run([sys.executable, "-m", "alignloop.cli.main", "bench", "outcome", "--quick", "--json",
                           "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)   # nothing but the JSON on stdout
    # Training shows it is moving on stderr, ending with each trained arm's last step.
    assert all(f"{arm}: step " in proc.stderr for arm in ("dpo", "ipo", "kto")), proc.stderr[-2000:]
    # The first step's line comes at once and says what its seconds hold; the second gives the time the rest will
    # take at a step's own pace (the first step's time, loading and reference pass included, would overstate it).
    first_step = re.search(r"dpo: step 1/\d+(, loss [\d.]+)?, \d+ s \(loading[^▶]*", proc.stderr)
    assert first_step and "to go" not in first_step.group(0), proc.stderr[-2000:]
    second_step = r"dpo: step 2/\d+(, loss [\d.]+)?, \d+ s, about (\d+h)?\d+m\d{2}s to go"
    assert re.search(second_step, proc.stderr), proc.stderr[-2000:]
    arms = {a["arm"]: a for a in result["arms"]}
    assert set(arms) == {"dpo", "ipo", "kto", "planner"}
    _, evaluated, _ = load_rows(OutcomeSetup.quick())
    expected_pairs = majority_count(evaluated)
    assert 0 < expected_pairs <= QUICK_EVAL_PAIRS
    for arm in arms.values():
        assert arm["method"] in ("dpo", "ipo", "kto")
        assert arm["pairs"] == expected_pairs
        gain = arm["candidate_accuracy"]["value"] - arm["reference_accuracy"]["value"]
        assert arm["gain"] == pytest.approx(gain, abs=1e-9)
        assert arm["gain_ci_low"] <= arm["gain"] <= arm["gain_ci_high"]
        for acc in (arm["reference_accuracy"], arm["candidate_accuracy"]):
            assert 0 <= acc["ci_low"] <= acc["value"] <= acc["ci_high"] <= 1
        assert arm["seconds"] > 0 and arm["steps"] >= 1 and arm["kl"] is not None
        # Trained and scored in the precision `alignloop run` resolves with every default (training.precision and
        # evaluation.precision auto): bfloat16 where this CPU computes it natively.
        assert arm["precision"] == training_precision("auto", "cpu")
        assert arm["eval_precision"] == inference_precision("auto", "cpu")
        # The probe judge was cross-fitted on the evaluated pairs and graded there; a win rate only when usable.
        assert arm["judged_prompts"] == 2 and 0 <= arm["judge_accuracy"] <= 1
        assert (arm["win_rate"] is None) or 0 <= arm["win_rate"]["ci_low"] <= arm["win_rate"]["ci_high"] <= 1
        # The gate's degenerate-answer check, candidate against reference on the same judged prompts.
        assert 0 <= arm["degenerate_rate"] <= 1 and 0 <= arm["degenerate_rate_reference"] <= 1
        delta = arm["degenerate_delta"]
        assert delta["value"] == pytest.approx(arm["degenerate_rate"] - arm["degenerate_rate_reference"], abs=1e-9)
    assert arms["kto"]["train_on"] == "unpaired_pairs"   # each pair as one up and one down answer
    assert arms["dpo"]["reference_accuracy"] == arms["ipo"]["reference_accuracy"]   # one reference, one set
    saved = json.loads((tmp_path / "outcome.json").read_text())
    assert saved["arms"] == result["arms"] and saved["setup"]["base_model"] == {"tiny": True}
    assert len({a["eval_set_hash"] for a in result["arms"]}) == 1   # every arm scored on the same pairs


def test_a_gain_without_an_interval_says_why_instead_of_printing_nan():
    from alignloop.benchmarks.outcome import gain_text
    from alignloop.benchmarks.outcome_cli import outcome_table

    row = {"gain": 0.02, "gain_ci_low": 0.0031, "gain_ci_high": 0.0405, "prompts": 242}
    assert gain_text(row) == "+0.020 [+0.003, +0.041]"
    assert gain_text(row, scale=100, digits=1) == "+2.0 [+0.3, +4.0]"
    few = {"gain": 0.0, "gain_ci_low": float("nan"), "gain_ci_high": float("nan"), "prompts": 8}
    assert gain_text(few) == "+0.000 (no interval: 8 prompts, too few)"
    acc = {"value": 0.5, "ci_low": float("nan"), "ci_high": float("nan")}
    result = {"setup": {"split": "test"}, "data": {"train_pairs": 200},
              "arms": [{**few, "arm": "dpo", "method": "dpo", "pairs": 8, "reference_accuracy": acc,
                        "candidate_accuracy": acc, "reward_accuracy": 0.5, "kl": None, "steps": 6, "seconds": 1.0}]}
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(outcome_table(result))
    text = console.export_text()
    assert "no interval: 8 prompts" in text and "nan" not in text
