"""`alignloop bench judge`: both judge kinds cross-fitted and graded on the same pairs, on the tiny model.

Fails if a kind is graded on pairs other than the ones given, if the probe cannot learn an obvious
preference out of fold, or if an unknown kind is accepted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from alignloop.benchmarks.judge import JudgeBenchSetup, run_judge_bench


def _run_folder(tmp_path, n: int = 48):
    rows = [{"prompt": [{"role": "user", "content": f"What is {i} + {i % 5}?"}],
             "chosen": "Thank you, happy to help!" if i % 3 else "Sure! Glad to help.",
             "rejected": "Ugh. No." if i % 2 else "Go away.", "votes": 1} for i in range(n)]
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "per_pair_scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.mark.slow
def test_both_kinds_are_graded_on_every_pair_of_a_run_and_the_probe_learns_out_of_fold(tmp_path):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = run_judge_bench(JudgeBenchSetup(run_dir=_run_folder(tmp_path), max_length=64,
                                                 base_model={"tiny": True}, cache_dir=tmp_path / "cache"))
    finally:
        torch.set_num_threads(threads)
    kinds = {k["kind"]: k for k in result["kinds"]}
    assert set(kinds) == {"probe", "reward_model"}
    for k in kinds.values():
        assert k["pairs"] == 48 and k["prompts"] == 48
        assert k["ci_low"] <= k["accuracy"] <= k["ci_high"]
        assert k["seconds"]["total"] == pytest.approx(sum(v for p, v in k["seconds"].items() if p != "total"))
    assert kinds["probe"]["accuracy"] == 1.0 and set(kinds["probe"]["seconds"]) == {"features", "fit", "judging",
                                                                                    "total"}
    assert "cross-fitted on 48 held-out pairs" in kinds["probe"]["fitted_on"]
    (diff,) = result["differences"]  # paired, pair by pair: the accuracies' difference, with its interval
    assert diff["kinds"] == ["probe", "reward_model"]
    assert diff["difference"] == pytest.approx(kinds["probe"]["accuracy"] - kinds["reward_model"]["accuracy"])
    assert diff["ci_low"] <= diff["difference"] <= diff["ci_high"]


def test_an_unknown_kind_is_refused_in_one_line():
    proc = subprocess.run([sys.executable, "-m", "alignloop.cli.main", "bench", "judge", "--kinds", "probe,oracle"],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert proc.returncode == 2
    assert "--kinds: oracle: choose from probe, reward_model" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_a_run_folder_without_scores_is_refused_in_one_line(tmp_path):
    """Fails if a missing or foreign per_pair_scores.jsonl reaches the user as a traceback."""
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "per_pair_scores.jsonl").write_text('{"question": "no pair here"}\n')
    for folder, says in ((tmp_path / "missing", "cannot be read"), (tmp_path / "foreign", "is not an evaluation's")):
        proc = subprocess.run([sys.executable, "-m", "alignloop.cli.main", "bench", "judge", "--tiny", "--run",
                               str(folder)], capture_output=True, text=True,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert f"--run: {folder / 'per_pair_scores.jsonl'} {says}" in proc.stderr + proc.stdout
        assert "Traceback" not in proc.stderr + proc.stdout


def test_a_data_folder_without_the_real_sets_is_refused_in_one_line(tmp_path):
    """Fails if bench judge (and bench outcome, which reads the same sets) lets a FileNotFoundError through."""
    for command in (["judge", "--tiny"], ["outcome", "--quick"]):
        proc = subprocess.run([sys.executable, "-m", "alignloop.cli.main", "bench", *command, "--data", str(tmp_path)],
                              capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "--data: " in proc.stderr + proc.stdout and "Traceback" not in proc.stderr + proc.stdout
