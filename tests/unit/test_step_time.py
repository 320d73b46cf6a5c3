"""Time a plan can promise: the last run's measured step time, scaled to the plan's tokens a step, gives the
plan's expected wall time and bounds its steps under planning.budget_minutes."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest

from alignloop import stages
from alignloop.config import PlanningSettings, TrainingSettings, load_settings
from alignloop.demo import write_demo_config, write_demo_warehouse
from alignloop.planner import choose_method
from alignloop.profile.lengths import Truncation
from alignloop.steptime import STEP_TIME_FILE, StepTime, measured, pick, read_step_times, write_step_time
from tests.unit.test_planner import shape
from tests.shared_builds import share_tiny_model


def pace(seconds: float = 8.0, tokens: float = 800.0, setup: float = 60.0, rows: int = 1000, method: str = "dpo",
         at: str = "2026-12-01T00:00:00Z") -> StepTime:
    return StepTime(seconds_per_step=seconds, tokens_per_step=tokens, setup_seconds=setup, rows=rows, steps=20,
                    method=method, device="cpu", measured_at=at)


def with_lengths(s, mean_tokens: float):
    t = Truncation(max_length=512, counted_with="tokenizer of the base model", rows=100, prompt_too_long=0,
                   truncated=0, p50_tokens=int(mean_tokens), p95_tokens=400, max_tokens=500, chosen=True,
                   mean_kept_tokens=mean_tokens)
    return replace(s, truncation=t)


def test_a_step_of_twice_the_tokens_is_expected_to_take_twice_the_measured_time():
    p = pace(seconds=8.0, tokens=800.0, setup=60.0, rows=1000)
    assert p.step_seconds(1600.0) == pytest.approx(16.0)
    assert p.step_seconds(None) == 8.0   # no token count for the plan: the step as measured
    assert p.setup_seconds_for(4000) == pytest.approx(240.0)


def test_the_budget_bounds_steps_with_the_measured_pace_not_the_guessed_seconds_per_step():
    data = with_lengths(shape(4000), mean_tokens=200.0)   # 4000 rows: batch 8, so 8 x 2 x 200 = 3200 tokens a step
    for guess in (1.0, 50.0):   # whatever planning.seconds_per_step says, the measurement decides
        plan = choose_method(data, TrainingSettings(), PlanningSettings(budget_minutes=10, seconds_per_step=guess),
                             step_times={"dpo": pace()})
        # 16 s a step at 800 tokens -> 32 s at 3200; setup 60 s per 1000 rows -> 240 s: (600 - 240) / 32 = 11 steps
        assert plan.hyperparameters["max_steps"] == 11
        assert plan.estimate["seconds_per_step"] == pytest.approx(32.0)
        assert plan.estimate["wall_seconds"] == pytest.approx(240 + 11 * 32.0)
        assert plan.estimate["measured"] is True
        assert any("budget_minutes 10" in r and "the last run's" in r for r in plan.reasons)


def test_without_a_measurement_the_plan_says_its_time_is_assumed():
    plan = choose_method(with_lengths(shape(400), 200.0), TrainingSettings(), PlanningSettings(seconds_per_step=4))
    e = plan.estimate
    assert e["measured"] is False and e["setup_seconds"] == 0
    assert e["wall_seconds"] == pytest.approx(e["steps"] * 4.0)
    assert "assumed" in plan.reasons[-1] and "expected wall time" in plan.reasons[-1]


def test_a_kto_plan_timed_from_a_dpo_step_counts_ktos_extra_passes_a_token():
    """KTO runs the policy on its KL rows and the reference on both every step: twice a pair method's passes a
    token. Scaled by tokens alone, a KTO plan timed from a DPO step was expected to take half a DPO step where
    one measured 2.5x (BENCHMARKS.md "Outcome")."""
    thumbs = with_lengths(shape(0, 300, 300), mean_tokens=200.0)
    plan = choose_method(thumbs, TrainingSettings(), PlanningSettings(), step_times={"dpo": pace()})
    assert plan.method == "kto"
    batch = plan.hyperparameters["per_device_batch_size"]
    # 8 s for 800 tokens of DPO -> batch x 200 tokens of KTO, at 6 passes a token against DPO's 3
    assert plan.estimate["seconds_per_step"] == pytest.approx(8.0 * batch * 200 / 800 * 2, rel=1e-3)
    assert any("x2 for KTO's 6 model passes a token against DPO's 3" in r for r in plan.reasons)
    own = choose_method(thumbs, TrainingSettings(), PlanningSettings(), step_times={"kto": pace(method="kto")})
    assert own.estimate["seconds_per_step"] == pytest.approx(8.0 * batch * 200 / 800, rel=1e-3)
    assert not any("model passes a token" in r for r in own.reasons)
    ipo = choose_method(with_lengths(shape(400), 200.0), TrainingSettings(), PlanningSettings(),
                        step_times={"kto": pace(method="kto")})
    assert ipo.method == "ipo" and any("x0.5 for IPO's 3 model passes a token against KTO's 6" in r
                                       for r in ipo.reasons)


def test_the_same_methods_measurement_is_preferred_to_a_newer_one_of_another(tmp_path):
    write_step_time(tmp_path, pace(seconds=3.0, method="kto", at="2026-12-02T00:00:00Z"))
    write_step_time(tmp_path, pace(seconds=5.0, method="dpo", at="2026-12-01T00:00:00Z"))
    found = read_step_times(tmp_path)
    assert set(found) == {"kto", "dpo"}
    assert pick(found, "dpo").seconds_per_step == 5.0
    assert pick(found, "ipo").method == "kto"   # none of its own: the newest measurement
    (tmp_path / STEP_TIME_FILE).write_text("{not json")
    assert read_step_times(tmp_path) == {}


def test_a_run_with_fewer_than_two_timed_steps_measures_nothing():
    result = SimpleNamespace(steps_timed=1, seconds_per_step=2.0, hyperparameters={"max_steps": 1}, tokens_trained=10,
                             setup_seconds=1.0, n_train=4, method="dpo", device="cpu")
    assert measured(result) is None
    timed = measured(replace_ns(result, steps_timed=4, hyperparameters={"max_steps": 4}))
    assert timed.tokens_per_step == pytest.approx(2.5) and timed.seconds_per_step == 2.0


def replace_ns(ns: SimpleNamespace, **kw) -> SimpleNamespace:
    return SimpleNamespace(**{**vars(ns), **kw})


@pytest.mark.slow
def test_training_measures_its_steps_and_the_next_plan_states_and_budgets_with_them(tmp_path):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        write_demo_warehouse(tmp_path / "warehouse.duckdb", n_feedback=300, n_prompts=40)
        settings = load_settings(share_tiny_model(write_demo_config(tmp_path, tiny=True)))
        settings = settings.model_copy(update={"training": TrainingSettings(max_length=128, max_steps=4,
                                                                            checkpoint_every=0, log_every=0)})
        stages.ingest(settings)
        assumed = settings.model_copy(update={"planning": PlanningSettings(time_steps=0)})
        first = stages.plan(assumed)   # nothing timed before it: the plan assumes planning.seconds_per_step
        assert first.plan.estimate["measured"] is False
        assert "planning.seconds_per_step, assumed" in first.plan.estimate["source"]
        stages.train(settings, first)
        timed = read_step_times(settings.workdir / ".cache" / "training")[first.plan.method]
        trained = json.loads((first.run_dir / "train.json").read_text())
        assert timed.steps == trained["steps_timed"] == 4
        assert timed.seconds_per_step == pytest.approx(trained["seconds_per_step"]) and timed.seconds_per_step > 0
        assert 0 < trained["setup_seconds"] < trained["runtime_s"]

        unbounded = settings.model_copy(update={"training": TrainingSettings(max_length=128)})
        second = stages.plan(unbounded).plan
        assert second.estimate["measured"] is True
        # Same rows, same batch: the same tokens a step, so the measured step time as it was.
        assert second.estimate["seconds_per_step"] == pytest.approx(timed.seconds_per_step, rel=1e-3)
        # The estimate is rounded for reading; the budget is set from the measurement itself (same rows, same setup).
        budget_s = timed.setup_seconds + 3.5 * timed.seconds_per_step
        bounded = unbounded.model_copy(update={"planning": PlanningSettings(budget_minutes=budget_s / 60)})
        assert stages.plan(bounded).plan.hyperparameters["max_steps"] == 3
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_the_first_plan_times_a_few_steps_and_states_and_budgets_with_them(tmp_path, caplog, capsys):
    """No run has been timed here: the plan trains planning.time_steps steps on a sample of the rows first, so
    its wall time and budget read a measured pace, not planning.seconds_per_step's guess (which here is absurd)."""
    import logging

    import torch

    caplog.set_level(logging.INFO, logger="alignloop.training.progress")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        write_demo_warehouse(tmp_path / "warehouse.duckdb", n_feedback=300, n_prompts=40)
        settings = load_settings(share_tiny_model(write_demo_config(tmp_path, tiny=True)))
        guess = PlanningSettings(seconds_per_step=1e-4)
        settings = settings.model_copy(update={"training": TrainingSettings(max_length=128), "planning": guess})
        stages.ingest(settings)
        capsys.readouterr()
        unbounded = stages.plan(settings).plan
        assert capsys.readouterr().out == ""   # `alignloop plan --json` prints the plan there, and nothing else
        timed = read_step_times(settings.workdir / ".cache" / "training")[unbounded.method]
        assert timed.before_plan and timed.steps == 3 and timed.seconds_per_step > 1e-3
        assert timed.rows > 0 and timed.setup_seconds > 0            # the reference log-probs of the sample, timed
        assert unbounded.estimate["measured"] is True
        assert "timed over 3" in unbounded.estimate["source"] and "before planning" in unbounded.estimate["source"]
        assert unbounded.estimate["seconds_per_step"] == pytest.approx(
            timed.step_seconds(unbounded.estimate["tokens_per_step"]), rel=1e-3)
        said = [r.getMessage() for r in caplog.records if r.name == "alignloop.training.progress"]
        # A start line and the pace, and none of the sample's own reference lines (they would read as the run's).
        assert said[0].startswith("timing the plan: 3 ") and said[1] == f"timing the plan: {timed.describe()}"
        assert not any(s.startswith("reference log-probs") for s in said), said
        # With a budget of about five measured steps the plan trains about five: at the guessed 0.1 ms a step it
        # would have kept every step the data asks for.
        wall = unbounded.estimate
        step = wall["seconds_per_step"]
        budget_s = wall["setup_seconds"] + 5.5 * step
        # The estimate's setup is rounded to 0.1 s, so the steps it affords are 5.5 give or take 0.05 s of steps.
        fewest, most = int(5.5 - 0.05 / step), int(5.5 + 0.05 / step)
        assert unbounded.hyperparameters["max_steps"] > most
        bounded = stages.plan(settings.model_copy(update={"planning": PlanningSettings(
            seconds_per_step=1e-4, budget_minutes=budget_s / 60)})).plan
        assert fewest <= bounded.hyperparameters["max_steps"] <= most, (step, bounded.hyperparameters["max_steps"])
        assert any("budget_minutes" in r and "timed over 3" in r for r in bounded.reasons)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize(("method", "processes", "said"), [
    ("online", 1, "online, which trains on answers it generates"),
    ("rlhf", 1, "rlhf, which trains on answers it generates"),
    ("dpo", 2, "2 processes"),
])
def test_an_online_method_or_several_processes_are_not_timed_before_planning(monkeypatch, caplog, method, processes,
                                                                           said):
    """A method that trains on its own answers (the registry's `online` flag, a plugin's too) or a run over several
    processes is not represented by a few steps in this one: the plan says it assumes planning.seconds_per_step,
    and neither reads the store nor trains."""
    import logging

    from alignloop.methods import METHODS
    from alignloop.methods.base import TrainingMethod
    from alignloop.planner import Plan

    monkeypatch.setitem(METHODS, "online", TrainingMethod(name="online", summary="s", builder="x:y", feedback="pairs",
                                                          default_beta=0.1, online=True))
    monkeypatch.setattr(stages, "_sample_training_rows", lambda *a, **k: pytest.fail("read the store"))
    monkeypatch.setattr(stages, "_load_split", lambda *a, **k: pytest.fail("read the store"))
    settings = SimpleNamespace(planning=PlanningSettings(), training=SimpleNamespace(processes=processes))
    caplog.set_level(logging.INFO, logger="alignloop.stages")
    assert stages._time_steps(settings, Plan(method, {"per_device_batch_size": 4}, (), None), None) is None
    assert any(said in r.getMessage() and "planning.seconds_per_step" in r.getMessage() for r in caplog.records)
