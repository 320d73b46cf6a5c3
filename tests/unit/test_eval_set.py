"""The frozen evaluation set: membership by prompt hash, a cap that does not reshuffle as data grows."""

from __future__ import annotations

import re

import pytest

from alignloop.datasets import Split, eval_sample_share, eval_set_hash, holdout_eval_pairs


def _rows(prompts: range, answers: int = 2) -> list[dict]:
    rows = []
    for i in prompts:
        prompt = [{"role": "user", "content": f"question {i}"}]
        rows += [{"prompt": prompt, "chosen": f"good {i}.{k}", "rejected": f"bad {i}.{k}"} for k in range(answers)]
    return rows


def _key(pairs) -> set:
    return {(p.prompt[0]["content"], p.chosen) for p in pairs}


def test_no_cap_scores_every_held_out_pair():
    pairs = holdout_eval_pairs(Split([], [], [], _rows(range(300))))
    assert len(pairs) == 600
    assert eval_sample_share(pairs, None) == 1.0


def test_a_cap_keeps_whole_prompts_within_it():
    pairs = holdout_eval_pairs(Split([], [], [], _rows(range(300))), max_examples=100)
    assert 0 < len(pairs) <= 100
    assert len(pairs) > 25  # a power-of-two share of 600 pairs: 1/8 gives about 75
    prompts = {p.prompt[0]["content"] for p in pairs}
    assert len(pairs) == 2 * len(prompts)  # a prompt's pairs come in or stay out together


def test_growing_data_adds_members_but_never_evicts_one():
    before = holdout_eval_pairs(Split([], [], [], _rows(range(300))), max_examples=100)
    after = holdout_eval_pairs(Split([], [], [], _rows(range(330))), max_examples=100)
    assert _key(before) <= _key(after)  # same share: old members stay
    newcomers = _key(after) - _key(before)
    assert all(int(q.split()[1]) >= 300 for q, _ in newcomers)  # only new prompts enter, by their hash
    assert len(newcomers) < 2 * 30  # and not all of them: only those that hash into the set
    assert eval_set_hash(before) != eval_set_hash(after)


def test_same_data_same_set_and_hash_whatever_the_row_order():
    rows = _rows(range(120))
    a = holdout_eval_pairs(Split([], [], [], rows), max_examples=60)
    b = holdout_eval_pairs(Split([], [], [], list(reversed(rows))), max_examples=60)
    assert a == b and eval_set_hash(a) == eval_set_hash(b)


def test_demo_settings_are_tuned_on_training_prompts_only():
    from alignloop.datasets import split_snapshot
    from alignloop.demo_tuning import validation_split
    from alignloop.schema import prompt_key
    from tests.unit.test_planner import pairs_table, thumbs_table

    split = split_snapshot(thumbs_table(100, 100), pairs_table(400), holdout_fraction=0.3)
    train, validation = validation_split(split, 0.25)
    held = {prompt_key(r["prompt"]) for r in split.holdout_pairs + split.holdout_unpaired}
    tuned_on = {prompt_key(p.prompt) for p in validation}
    trained_on = {prompt_key(r["prompt"]) for r in train.train_pairs + train.train_unpaired}
    assert validation and trained_on
    assert not tuned_on & held and not trained_on & held and not tuned_on & trained_on
    assert not train.holdout_pairs and not train.holdout_unpaired


def test_demo_tuning_picks_the_highest_validation_lower_bound_the_gate_passes():
    from alignloop.demo_tuning import choose_setting

    results = {"24:0.0003": (0.01, True), "24:0.0006": (0.05, True), "48:0.001": (0.09, False)}
    assert choose_setting(results) == "24:0.0006"  # 48:0.001 gains most but its own answers fail the gate
    assert choose_setting({**results, "48:0.001": (0.09, True)}) == "48:0.001"
    assert choose_setting({"24:0.0003": (-0.01, True), "24:0.0006": (0.0, True)}) is None
    assert choose_setting({"24:0.0006": (0.05, False)}) is None


def test_when_the_gate_passes_none_the_closest_setting_fails_fewest_checks_then_gains_most():
    from alignloop.demo_tuning import closest_setting

    # The validation runs that chose the demo's settings: the largest gain fails two checks, the smaller one.
    tried = {"24:0.0006": (0.109, 2), "24:0.0006:1": (0.113, 2), "24:0.0003:1": (0.074, 1)}
    assert closest_setting(tried) == "24:0.0003:1"
    assert closest_setting({**tried, "24:0.0002:1": (0.080, 1)}) == "24:0.0002:1"  # same checks: higher bound
    assert closest_setting({"24:0.0003:1": (0.0, 0), "24:0.0006": (-0.02, 1)}) is None  # no gain: nothing


def test_a_demo_tuning_setting_may_name_an_sft_weight_and_the_plan_trains_with_it():
    from alignloop.config import PlanningSettings, TrainingSettings
    from alignloop.demo_tuning import TuningSetting, parse_setting
    from alignloop.planner import choose_method
    from tests.unit.test_planner import shape

    assert parse_setting("24:0.0006") == TuningSetting(24, 0.0006, 0.0)
    assert parse_setting("24:0.0006:0.5") == TuningSetting(24, 0.0006, 0.5)
    assert parse_setting("24:0.0006").folder_name == "tune-24-0.0006"
    assert parse_setting("24:0.0006:0.5").folder_name == "tune-24-0.0006-sft0.5"  # never the folder without it
    for bad in ("24", "24:0.0006:0.5:1", "24:fast", "0:0.0006", "24:0", "24:0.0006:-1", "24:0.0006:nan", "24::0.5"):
        with pytest.raises(ValueError, match=rf"setting '{re.escape(bad)}': expected max_steps:learning_rate"):
            parse_setting(bad)
    training = parse_setting("24:0.0006:0.5").applied_to(TrainingSettings(method="dpo", max_steps=99))
    hp = choose_method(shape(600), training, PlanningSettings()).hyperparameters
    assert (hp["max_steps"], hp["learning_rate"], hp["loss_type"], hp["loss_weights"]) == (
        24, 0.0006, ["sigmoid", "sft"], [1.0, 0.5])


def test_demo_tuning_refuses_a_bad_setting_in_one_line_before_any_work(tmp_path, capsys):
    from alignloop.demo_tuning import main

    with pytest.raises(SystemExit) as done:
        main(["--workdir", str(tmp_path / "w"), "24:0.0006", "24:0.0006:lots"])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith("setting '24:0.0006:lots': expected max_steps:learning_rate[:sft_weight], e.g. 24:0.0006 or "
                        "24:0.0006:0.5")
    assert not (tmp_path / "w").exists()  # nothing was ingested or trained
