"""Promotion through the gate, rollback, and registration that is all-or-nothing and one at a time,
against a real MLflow sqlite store (model files are a stand-in adapter: nothing here loads weights)."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time

import pytest
from mlflow import MlflowClient

from alignloop import registry
from alignloop.config import PromotionSettings
from alignloop.errors import TerminalError
from alignloop.gate import Champion, decide, input_from_report, registry_check, report_tags, verdict_tags
from alignloop.registry.lock import _server_lock
from tests.unit.eval_reports import eval_report
from tests.unit import test_registry as registry_tests

TARGET = registry_tests.TARGET
# The MLflow store and stand-in adapter fixtures of the registry tests.
empty_store, tracking_uri, adapter_dir = registry_tests.empty_store, registry_tests.tracking_uri, registry_tests.adapter_dir

DEFAULTS = PromotionSettings()
CHECK = registry_check(DEFAULTS)


def _register_report(uri, model_dir, report, run_folder, settings=DEFAULTS, **kw):
    """Register a version the way stages.register does: eval tags and metrics from the report, the gate's
    verdict against the current champion and the settings that decided it, challenger only if it passed."""
    champion = registry.find_version(uri, TARGET, "champion")
    verdict = decide(input_from_report(report, None if champion is None else Champion(champion.version)), settings)
    lineage = {"run_folder": run_folder, "snapshot_id": f"snap-{run_folder}", **report_tags(report),
               **verdict_tags(verdict)}
    return registry.log_and_register(
        tracking_uri=uri, experiment="alignment", target=TARGET, run_name=run_folder, params={},
        metrics=report["metrics"], step_metrics=[], json_artifacts={}, model_dir=model_dir,
        model_info={"kind": "lora", "base_model": "tiny"}, lineage=lineage, challenger=verdict.passed, **kw)


def _aliases(uri) -> dict[str, int]:
    return {a: r["version"] for r in registry.describe(uri, TARGET) for a in r["aliases"]}


def test_promote_refuses_a_failing_version_and_moves_nothing_then_force_records_who_and_why(
        tracking_uri, adapter_dir, monkeypatch):
    _register_report(tracking_uri, adapter_dir, eval_report(delta=(0.06, 0.02, 0.10)), "r1")
    registry.promote(tracking_uri, TARGET, check=CHECK)
    assert _aliases(tracking_uri) == {"champion": 1, "newest": 1}
    flipped = eval_report(delta=(-0.09, -0.14, -0.04), champion_version=1, champion_delta=(-0.15, -0.2, -0.1))
    _register_report(tracking_uri, adapter_dir, flipped, "r2")
    assert _aliases(tracking_uri) == {"champion": 1, "newest": 2}  # registered for the record, not a challenger

    with pytest.raises(TerminalError) as refused:
        registry.promote(tracking_uri, TARGET, 2, check=CHECK)
    text = str(refused.value)
    assert "version 2 is not promoted (gate verdict: fail;" in text and "nothing moved" in text
    assert "lower bound -0.200 ≤ +0.010" in text and "alignloop promote --force --reason TEXT" in text
    assert _aliases(tracking_uri) == {"champion": 1, "newest": 2}

    monkeypatch.setenv("USER", "someone-else")  # anyone can set it: it is not who promotes
    monkeypatch.setenv("LOGNAME", "someone-else")
    registry.promote(tracking_uri, TARGET, 2, check=CHECK, force_reason="hotfix for ticket 42")
    assert _aliases(tracking_uri) == {"champion": 2, "previous_champion": 1, "newest": 2}
    tags = registry.describe(tracking_uri, TARGET, version=2)[0]["tags"]
    assert tags["alignloop.promotion.forced_by"] == f"os user {pwd.getpwuid(os.getuid()).pw_name}"
    assert tags["alignloop.promotion.forced_reason"] == "hotfix for ticket 42"
    assert tags["alignloop.promotion.verdict"] == "fail"
    assert tags["alignloop.promotion.settings_hash"] == PromotionSettings().gate_hash()
    assert json.loads(tags["alignloop.promotion.settings"]) == PromotionSettings().gate_values()


def test_the_library_has_no_ungated_promotion(tracking_uri, adapter_dir):
    _register_report(tracking_uri, adapter_dir, eval_report(), "r1")
    with pytest.raises(TypeError, match="check"):
        registry.promote(tracking_uri, TARGET)  # the gate is a required argument
    with pytest.raises(TypeError):
        registry.promote(tracking_uri, TARGET, check=None)
    assert "champion" not in _aliases(tracking_uri)


def test_promotion_under_looser_settings_than_registered_is_refused_without_force(tracking_uri, adapter_dir):
    # A candidate that misses the recorded bound (+0.005 ≤ +0.01) but would pass with the check switched off.
    _register_report(tracking_uri, adapter_dir, eval_report(delta=(0.05, 0.005, 0.09)), "r1")
    assert _aliases(tracking_uri) == {"newest": 1}
    loose = registry_check(PromotionSettings(min_gain_ci_low=None))
    with pytest.raises(TerminalError, match=r"looser than the ones it was registered under \(\w+\): "
                                            r"min_gain_ci_low 0.01 → null"):
        registry.promote(tracking_uri, TARGET, 1, check=loose)
    assert "champion" not in _aliases(tracking_uri)
    registry.promote(tracking_uri, TARGET, 1, check=loose, force_reason="product sign-off, see ticket 7")
    tags = registry.describe(tracking_uri, TARGET, version=1)[0]["tags"]
    assert tags["alignloop.promotion.settings_hash"] == PromotionSettings(min_gain_ci_low=None).gate_hash()
    assert tags["alignloop.gate.settings_hash"] == PromotionSettings().gate_hash()  # what it was registered under
    assert tags["alignloop.promotion.forced_reason"] == "product sign-off, see ticket 7"


def test_a_better_challenger_passes_and_rollback_restores_the_previous_champion(tracking_uri, adapter_dir):
    _register_report(tracking_uri, adapter_dir, eval_report(), "r1")
    registry.promote(tracking_uri, TARGET, check=CHECK)
    better = eval_report(set_hash="set-b", champion_version=1, champion_delta=(0.04, 0.015, 0.07))
    _register_report(tracking_uri, adapter_dir, better, "r2")
    promoted = registry.promote(tracking_uri, TARGET, check=CHECK)
    assert promoted.version == 2 and _aliases(tracking_uri) == {"champion": 2, "previous_champion": 1, "newest": 2}
    assert "alignloop.promotion.forced_by" not in registry.describe(tracking_uri, TARGET, version=2)[0]["tags"]
    restored = registry.rollback(tracking_uri, TARGET)
    assert restored.version == 1 and _aliases(tracking_uri) == {"champion": 1, "newest": 2}


def test_a_challenger_evaluated_against_an_older_champion_is_refused(tracking_uri, adapter_dir):
    _register_report(tracking_uri, adapter_dir, eval_report(set_hash="set-a"), "r1")
    registry.promote(tracking_uri, TARGET, check=CHECK)
    _register_report(tracking_uri, adapter_dir, eval_report(champion_version=1, champion_delta=(0.05, 0.02, 0.08)),
                     "r2")
    _register_report(tracking_uri, adapter_dir, eval_report(champion_version=1, champion_delta=(0.04, 0.02, 0.08)),
                     "r3")
    registry.promote(tracking_uri, TARGET, 3, check=CHECK)
    with pytest.raises(TerminalError, match=r"gate verdict: unmeasured; unmeasured: evaluated against version 1, "
                                            r"not the current champion \(version 3\)"):
        registry.promote(tracking_uri, TARGET, 2, check=CHECK)
    assert _aliases(tracking_uri)["champion"] == 3


def test_registering_one_run_twice_returns_the_same_version(tracking_uri, adapter_dir):
    first = _register_report(tracking_uri, adapter_dir, eval_report(), "r1", same_as=[{"run_folder": "r1"}])
    again = _register_report(tracking_uri, adapter_dir, eval_report(), "r1", same_as=[{"run_folder": "r1"}])
    assert (first.version, first.reused, again.version, again.reused) == (1, False, 1, True)
    assert [r["version"] for r in registry.describe(tracking_uri, TARGET)] == [1]
    assert len(MlflowClient(tracking_uri).search_runs(
        [MlflowClient(tracking_uri).get_experiment_by_name("alignment").experiment_id])) == 1


def _half_register(uri, *, alias: str | None) -> str:
    """What a process killed mid-registration leaves: a version without the completeness tag."""
    client = MlflowClient(uri, uri)
    first = client.get_model_version(TARGET, "1")
    source = client.get_logged_model(first.source.removeprefix("models:/")).artifact_location
    mv = client.create_model_version(TARGET, source, run_id=first.run_id, tags={"alignloop.snapshot_id": "snap-killed"})
    if alias:
        client.set_registered_model_alias(TARGET, alias, mv.version)
    return mv.version


def test_a_half_registered_version_is_never_promoted_and_the_next_registration_abandons_it(tracking_uri, adapter_dir):
    _register_report(tracking_uri, adapter_dir, eval_report(), "r1")
    killed = _half_register(tracking_uri, alias=None)  # killed between creating the version and its alias
    with pytest.raises(TerminalError, match=f"version {killed} was left half-registered by an interrupted run"):
        registry.promote(tracking_uri, TARGET, check=CHECK)
    killed_late = _half_register(tracking_uri, alias="challenger")  # killed after the alias, before the tag
    with pytest.raises(TerminalError, match=f"version {killed_late} is incomplete"):
        registry.promote(tracking_uri, TARGET, check=CHECK)
    assert "champion" not in _aliases(tracking_uri)
    rows = {r["version"]: r for r in registry.describe(tracking_uri, TARGET)}
    assert [v for v, r in rows.items() if r["complete"]] == [1]

    new = _register_report(tracking_uri, adapter_dir, eval_report(), "r2")
    rows = {r["version"]: r for r in registry.describe(tracking_uri, TARGET)}
    assert new.version == 4 and _aliases(tracking_uri) == {"challenger": 4, "newest": 4}
    assert rows[2]["tags"]["alignloop.abandoned"] == rows[3]["tags"]["alignloop.abandoned"] == "interrupted registration"
    assert registry.promote(tracking_uri, TARGET, check=CHECK).version == 4


@pytest.mark.slow
def test_a_second_process_waits_for_the_target_lock_or_exits_with_a_clear_line(tracking_uri, adapter_dir):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom alignloop.registry import target_lock\n"
         f"with target_lock({tracking_uri!r}, {TARGET!r}):\n    print('held', flush=True)\n    time.sleep(4)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TerminalError) as busy:
            _register_report(tracking_uri, adapter_dir, eval_report(), "r1", lock_wait_s=0.5)
        assert f"the registry lock of {TARGET!r} is busy: held by pid {holder.pid} on " in str(busy.value)
        assert "raise promotion.lock_wait_s to wait longer" in str(busy.value)
        assert registry.describe(tracking_uri, TARGET) == []
        started = time.monotonic()
        version = _register_report(tracking_uri, adapter_dir, eval_report(), "r1", lock_wait_s=60)
        assert version.version == 1 and time.monotonic() - started > 1.0  # it waited for the holder
    finally:
        holder.wait(timeout=30)


def test_the_server_lock_is_one_registered_model_that_a_second_taker_waits_on_and_an_expired_one_is_freed(
        tracking_uri):
    name = f"{TARGET}.alignloop-lock"
    with _server_lock(tracking_uri, TARGET, wait_s=0, lease_s=3600):
        assert MlflowClient(tracking_uri).get_registered_model(name).tags["alignloop.lock_holder"].startswith("pid ")
        with pytest.raises(TerminalError, match=f"the registry lock of {TARGET!r} is busy: held by pid"):
            with _server_lock(tracking_uri, TARGET, wait_s=0.2, lease_s=3600):
                pass
    assert MlflowClient(tracking_uri).search_registered_models(f"name = '{name}'") == []
    # A holder killed without releasing: once its lease has run out, the next taker removes it.
    MlflowClient(tracking_uri).create_registered_model(
        name, tags={"alignloop.lock_holder": "pid 1 on gone", "alignloop.lock_expires": str(time.time() - 1)})
    with _server_lock(tracking_uri, TARGET, wait_s=0, lease_s=3600):
        tags = MlflowClient(tracking_uri).get_registered_model(name).tags
        assert tags["alignloop.lock_holder"] != "pid 1 on gone"


@pytest.mark.slow
def test_processes_creating_one_new_sqlite_store_at_once_all_succeed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    code = (f"from alignloop import registry\nprint(registry.describe({uri!r}, 'm'))")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    assert [(rc, out.strip()) for rc, out, _ in results] == [(0, "[]")] * 2, [err[-400:] for *_, err in results]


def test_report_tags_are_what_the_gate_reads_back():
    assert report_tags(eval_report(champion_version=7, champion_delta=(0, 0, 0))) == {
        "eval_set_hash": "set-a", "evaluated_against": "7", "champion_eval_set_hash": "set-a", "judge_usable": "true"}
    assert json.dumps(report_tags(eval_report(judge_usable=None)))  # all strings, taggable
    assert report_tags(eval_report(judge_usable=None))["judge_usable"] == ""
