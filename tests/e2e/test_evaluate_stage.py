"""The evaluate stage on the tiny demo: all held-out pairs, intervals, per-pair scores beside the
report, and the registry's champion scored on the same set in the same run."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from alignloop import stages
from alignloop.config import load_settings
from alignloop.datasets import holdout_eval_pairs
from alignloop.demo import write_demo_config, write_demo_warehouse
from tests.shared_builds import share_tiny_model

pytestmark = pytest.mark.slow


def test_evaluate_scores_every_held_out_pair_and_the_champion_once_there_is_one(tmp_path):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra threads only wait on a busy machine
    try:
        write_demo_warehouse(tmp_path / "warehouse.duckdb", n_feedback=1200, n_prompts=100)
        config = share_tiny_model(write_demo_config(tmp_path, tiny=True))
        # float32: the champion (a merged model) and the candidate (base + adapter) round differently in bfloat16,
        # and the tiny model's 8 steps move scores by less than that rounding, so only float32 tells them apart
        config.write_text(config.read_text().replace("evaluation:\n", "evaluation:\n  precision: float32\n", 1))
        settings = load_settings(config)
        assert settings.evaluation.precision == "float32"
        stages.ingest(settings)
        planned = stages.plan(settings)
        stages.train(settings, planned)

        first = stages.evaluate(settings, planned)
        split = stages._load_split(settings, planned.snapshot.snapshot_id)
        assert first.n_pairs == len(holdout_eval_pairs(split)) > 24  # no cap: every held-out pair
        assert first.champion_version is None and first.champion_delta is None
        report = json.loads((planned.run_dir / "eval_report.json").read_text())
        assert report["champion_version"] is None and report["judge"]["kind"] == "probe"
        assert set(report["samples"][0]) >= {"prompt", "candidate", "reference"}
        lines = (planned.run_dir / "per_pair_scores.jsonl").read_text().splitlines()
        assert len(lines) == first.n_pairs

        version = stages.register(settings, planned)
        client = MlflowClient(settings.tracking_uri, registry_uri=settings.tracking_uri)
        client.set_registered_model_alias(settings.target, "champion", str(version.version))

        second = stages.evaluate(settings, planned)
        assert second.reference_cached  # same base model, same set: the reference is not scored again
        assert second.eval_set_hash == first.eval_set_hash
        # The champion is this very candidate: same scores on the same pairs, a delta of exactly zero.
        m = second.metrics()
        assert second.champion_version == str(version.version)
        assert m["eval_pref_accuracy_champion"] == pytest.approx(m["eval_pref_accuracy_candidate"])
        assert (m["eval_pref_accuracy_champion_delta"], m["eval_pref_accuracy_champion_delta_ci_low"],
                m["eval_pref_accuracy_champion_delta_ci_high"]) == pytest.approx((0.0, 0.0, 0.0), abs=1e-9)
        rows = [json.loads(line) for line in (planned.run_dir / "per_pair_scores.jsonl").read_text().splitlines()]
        assert [r["champion_logp_chosen"] for r in rows] == pytest.approx([r["candidate_logp_chosen"] for r in rows],
                                                                           abs=1e-3)
        assert set(json.loads((planned.run_dir / "eval_report.json").read_text())["samples"][0]) >= {"champion"}
    finally:
        torch.set_num_threads(threads)
