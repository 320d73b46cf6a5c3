"""Release after release: new prompts arrive, a candidate is trained, evaluated against the champion on
its own (new) evaluation set in the same run, registered, and promoted through the gate without --force
whenever it is better.

Five releases on the tiny offline model, through the real stages (ingest from a DuckDB warehouse of
`preference` rows, plan, DPO training, evaluation, registration in an MLflow sqlite registry) and the
`alignloop promote` command. Each release brings 80 new prompts. Four of them bring a new preference
too (a new plan, whose help desk's answers users prefer), which the champion never saw: the candidate, trained
on everything so far, is better on it. One brings only more prompts of the preferences already
learned: its candidate may or may not be measurably better, and the gate must say which, never
"unmeasured". Every release's held-out set differs from the one before, as it does in production.

The tiny model's own answers are noise, so no judge compares them here (evaluation.judge.kind: none;
the judge is tested in tests/unit/test_eval_judge.py); the generation guards still run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from alignloop import registry, stages
from alignloop.cli.main import app
from alignloop.config import load_settings

pytestmark = [pytest.mark.slow,
              # peft 0.21 calls a transformers 5 API that warns; not ours to fix.
              pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")]

TARGET = "helpdesk"
# Each release is about a plan: users prefer the answers of the plan's own help desk, which open with its
# code name, over answers opening with another name. A preference is a plan, its code name and four
# other names; the untrained tiny model ranks another name first for most of them, so there is
# something to learn, and no name appears in two preferences (nor in any prompt), so a model that
# learned one has not learned another.
PREFERENCES = {
    1: ("alpha", "Zorbo", ("Gelby", "Tarny", "Wopsa", "Fenko")),
    2: ("beta", "Harpo", ("Brulo", "Yorda", "Sabri", "Ulmec")),
    3: ("gamma", "Pront", ("Clupa", "Ivato", "Otrix", "Nexor")),
    4: ("delta", "Dresk", ("Corvi", "Dulmo", "Golva", "Istra")),
}
# Release -> the preference its new prompts carry: release 4 brings no new preference, only new prompts.
RELEASES = {1: 1, 2: 2, 3: 3, 4: 1, 5: 4}
PROMPTS_PER_RELEASE = 80
T0 = datetime(2026, 10, 1, 9, 0)


def _rows(release: int) -> list[tuple]:
    plan, code, others = PREFERENCES[RELEASES[release]]
    out = []
    for i in range(PROMPTS_PER_RELEASE):
        a, b = i + 3 * release, release + 1
        prompt = f"About the {plan} plan, question {i} of release {release}: what is {a} plus {b}?"
        out.append((f"r{release}-{i}", T0 + timedelta(days=release, minutes=i), prompt,
                    f"{code}: it is {a + b}.", f"{others[i % len(others)]}: it is {a + b}."))
    return out


def _arrive(warehouse: Path, release: int) -> None:
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE TABLE IF NOT EXISTS preference (id VARCHAR, ts TIMESTAMP, prompt VARCHAR, chosen VARCHAR, "
                    "rejected VARCHAR)")
        con.executemany("INSERT INTO preference VALUES (?, ?, ?, ?, ?)", _rows(release))


def _config(tmp_path: Path) -> Path:
    config = {
        "target": TARGET, "workdir": str(tmp_path / "work"),
        "sources": [{"name": "prod", "connector": "duckdb", "options": {"path": str(tmp_path / "wh.duckdb")},
                     "shape": "preference"}],
        "base_model": {"tiny": True, "cache_dir": str(tmp_path / "models")},
        "training": {"method": "dpo", "learning_rate": 0.01, "beta": 0.1, "per_device_batch_size": 4,
                     "lora": {"r": 8, "alpha": 16, "dropout": 0.0}, "log_every": 0, "device": "cpu"},
        "evaluation": {"holdout_fraction": 0.5, "generation_prompts": 32, "max_new_tokens": 8, "kl_samples": 0,
                       "bootstrap_samples": 1000, "judge": {"kind": "none"}},
        "promotion": {"lock_wait_s": 30},
    }
    path = tmp_path / "alignloop.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _release(settings) -> tuple[int, dict, dict]:
    """One `alignloop run`: ingest, plan, train, evaluate (the champion fetched and scored on the new set),
    register. Returns the version, its tags and the evaluation report's metrics."""
    stages.ingest(settings)
    planned = stages.plan(settings)
    stages.train(settings, planned)
    report = stages.evaluate(settings, planned)
    version = stages.register(settings, planned)
    tags = registry.describe(settings.tracking_uri, TARGET, version=version.version)[0]["tags"]
    return version.version, tags, {**report.metrics(), "champion_version": report.champion_version,
                                   "eval_set_hash": report.eval_set_hash}


def _champion(settings) -> int | None:
    found = registry.find_version(settings.tracking_uri, TARGET, "champion")
    return None if found is None else found.version


def test_five_releases_with_new_prompts_each_promote_through_the_gate_whenever_the_candidate_is_better(tmp_path):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra threads only wait on a busy machine
    runner = CliRunner()
    config = _config(tmp_path)
    settings = load_settings(config)
    sets, history = set(), []
    try:
        for release in RELEASES:
            _arrive(tmp_path / "wh.duckdb", release)
            champion_before = _champion(settings)
            version, tags, m = _release(settings)
            verdict, reasons = tags["alignloop.gate.verdict"], tags["alignloop.gate.reasons"]
            history.append((release, version, verdict, champion_before))
            # New prompts: a new held-out set every release, and the champion scored on it in the same run.
            assert m["eval_set_hash"] not in sets
            sets.add(m["eval_set_hash"])
            assert m["eval_prompts"] >= settings.promotion.min_prompts
            if champion_before is not None:
                assert m["champion_version"] == str(champion_before)
                assert (f"pass: the champion (version {champion_before}) scored in the same run on the challenger's "
                        f"set {m['eval_set_hash']}") in reasons
            # The gate measures every release: never "unmeasured" for want of a comparable champion.
            assert verdict in ("pass", "fail"), reasons
            new_preference = RELEASES[release] not in [RELEASES[r] for r in RELEASES if r < release]
            if new_preference:  # better than a champion that never saw this preference: it must pass
                assert verdict == "pass", (reasons, {k: v for k, v in m.items() if "pref" in k})
            promoted = runner.invoke(app, ["promote", "--config", str(config)])
            if verdict == "pass":
                assert promoted.exit_code == 0, promoted.output
                assert f"{TARGET} version {version} is now champion" in promoted.stdout
                assert "--force" not in promoted.stdout and _champion(settings) == version
            else:
                # No version passed since the last promotion: nothing to promote, nothing moves.
                assert promoted.exit_code == 1 and _champion(settings) == champion_before
    finally:
        torch.set_num_threads(threads)
    promotions = [version for _, version, verdict, _ in history if verdict == "pass"]
    assert len(promotions) >= 4 and len(history) == 5
    rows = {r["version"]: r for r in registry.describe(settings.tracking_uri, TARGET)}
    assert all("alignloop.promotion.forced_by" not in rows[v]["tags"] for v in promotions)
    assert all(rows[v]["tags"]["alignloop.promotion.verdict"] == "pass" for v in promotions)
