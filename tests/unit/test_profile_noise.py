"""Label noise from every signal the feedback carries, each with its interval and the count behind it."""

from __future__ import annotations

import random
from datetime import datetime

import pyarrow as pa
import pytest

from alignloop.benchmarks.regimes import empty_pairs, empty_thumbs, flipped_thumbs, synthetic_pairs, synthetic_thumbs
from alignloop.schema import PAIRS_SCHEMA, UNPAIRED_SCHEMA
from alignloop.profile import measure_profile
from alignloop.profile.noise import flip_from_cycles, flip_from_disagreement
from alignloop.profile.reward_model import estimate_from_table

TS = datetime(2026, 10, 1)


def _pair(i: int, prompt: str, chosen: str, rejected: str, user: str | None = None) -> dict:
    return {"event_id": f"p{i}", "source": "s", "ts": TS, "user_id": user, "model_version": "v",
            "prompt": [{"role": "user", "content": prompt}], "chosen": chosen, "rejected": rejected}


def _signal(shape, name):
    return next(s for s in shape.noise_signals if s.signal == name)


@pytest.mark.parametrize("p", [0.0, 0.05, 0.2, 0.4])
def test_flip_formulas_invert_their_disagreement_rates(p):
    assert flip_from_disagreement(2 * p * (1 - p)) == pytest.approx(p)
    assert flip_from_cycles(p * (1 - p)) == pytest.approx(p)


def test_repeated_pairs_judged_by_different_people_recover_the_flip_rate():
    rng, rows, rate = random.Random(3), [], 0.2
    for item in range(300):
        for vote in range(3):   # three people judge each pair, in random presentation order
            good, bad = f"good {item}", f"bad {item}"
            if rng.random() < rate:
                good, bad = bad, good
            rows.append(_pair(len(rows), f"q{item}", good, bad, user=f"u{vote}"))
    shape = measure_profile(empty_thumbs(), pa.Table.from_pylist(rows, schema=PAIRS_SCHEMA), 0.2, model_noise=False)
    for name in ("repeated_pairs", "annotator_pairs"):
        s = _signal(shape, name)
        assert s.support == 300 and s.enough
        assert s.low <= rate <= s.high and s.high - s.low < 0.1
    assert shape.pair_noise is not None and shape.pair_noise.flip_rate == pytest.approx(rate, abs=0.05)


def test_one_persons_repeats_are_not_agreement_between_people():
    rows = [_pair(i, f"q{i % 40}", f"a{i % 40}", f"b{i % 40}", user="same") for i in range(80)]
    shape = measure_profile(empty_thumbs(), pa.Table.from_pylist(rows, schema=PAIRS_SCHEMA), 0.2, model_noise=False)
    assert _signal(shape, "repeated_pairs").support == 40
    assert _signal(shape, "annotator_pairs").support == 0


def test_intransitive_triads_estimate_noise_without_any_repeat():
    rng, rows, rate, flipped = random.Random(5), [], 0.15, 0
    for prompt in range(600):
        answers = [f"answer {prompt} rank {k}" for k in range(3)]   # rank 0 is best
        for a, b in ((0, 1), (1, 2), (0, 2)):
            good, bad = answers[a], answers[b]
            if rng.random() < rate:
                good, bad, flipped = bad, good, flipped + 1
            rows.append(_pair(len(rows), f"q{prompt}", good, bad))
    shape = measure_profile(empty_thumbs(), pa.Table.from_pylist(rows, schema=PAIRS_SCHEMA), 0.2, model_noise=False)
    triads = _signal(shape, "intransitive_triads")
    assert _signal(shape, "repeated_pairs").support == 0
    assert triads.support == 600 and triads.low <= flipped / len(rows) <= triads.high
    assert shape.pair_noise.signal == "intransitive_triads"


def test_contradictory_thumbs_measure_thumb_noise():
    rng, rows, rate = random.Random(7), [], 0.1
    for answer in range(200):
        truth = answer % 2 == 0
        for vote in range(2):
            label = truth if rng.random() >= rate else not truth
            rows.append({"event_id": f"t{len(rows)}", "source": "s", "ts": TS, "user_id": f"u{vote}",
                         "model_version": "v", "prompt": [{"role": "user", "content": f"q{answer}"}],
                         "completion": f"answer {answer}", "label": label})
    shape = measure_profile(pa.Table.from_pylist(rows, schema=UNPAIRED_SCHEMA), empty_pairs(), 0.2)
    s = shape.thumb_noise
    assert s is not None and s.support == 200 and s.low <= rate <= s.high
    assert shape.pair_noise is None


def test_too_few_repeats_are_reported_but_not_acted_on():
    rows = [_pair(i, f"q{i % 10}", f"a{i % 10}", f"b{i % 10}") for i in range(20)]
    shape = measure_profile(empty_thumbs(), pa.Table.from_pylist(rows, schema=PAIRS_SCHEMA), 0.2)
    s = _signal(shape, "repeated_pairs")
    assert s.support == 10 and not s.enough and s.flip_rate == 0.0
    assert shape.pair_noise is None


@pytest.mark.slow
@pytest.mark.parametrize("rate,seed", [(0.05, 1), (0.25, 1), (0.4, 2)])
def test_reward_model_recovers_injected_flips_without_any_repeated_comparison(rate, seed):
    pairs, flipped = synthetic_pairs(2000, rate, seed)
    shape = measure_profile(empty_thumbs(), pairs, 0.2)
    assert _signal(shape, "repeated_pairs").support == 0 and _signal(shape, "intransitive_triads").support == 0
    est = shape.pair_noise
    assert est is not None and est.signal == "reward_model" and est.support == 2000
    truth = flipped / 2000
    assert est.low <= truth <= est.high
    assert est.high - est.low < 0.15   # an interval that says something


def test_reward_model_says_when_the_words_carry_no_signal():
    rng = random.Random(0)
    pairs, _ = synthetic_pairs(300, 0.0, 4)
    rows = pairs.to_pylist()
    for r in rows:   # labels unrelated to the answers' words
        if rng.random() < 0.5:
            r["chosen"], r["rejected"] = r["rejected"], r["chosen"]
    est = estimate_from_table(pa.Table.from_pylist(rows, schema=PAIRS_SCHEMA))
    assert est.flip_rate is None and not est.enough and "no signal" in est.detail


def test_pairable_prompts_and_truncation_are_measured():
    thumbs = synthetic_thumbs(30, 4, 0.5, seed=1)
    shape = measure_profile(thumbs, empty_pairs(), holdout_fraction=0.0, max_length=12)
    by_prompt: dict[str, list[bool]] = {}
    for r in thumbs.to_pylist():
        by_prompt.setdefault(r["prompt"][0]["content"], []).append(r["label"])
    both = [v for v in by_prompt.values() if any(v) and not all(v)]
    assert shape.pairable_prompts_train == len(both) > 0
    assert shape.pairs_from_thumbs_train == sum(sum(v) * (len(v) - sum(v)) for v in both)
    t = shape.truncation
    assert t.rows == 120 and t.counted_with.startswith("approximate")
    assert t.prompt_too_long + t.truncated == 120   # every row is longer than 12 approximate tokens
    assert t.max_length == 12 and not t.chosen


def test_reward_model_over_the_cap_fits_a_stated_content_chosen_sample(monkeypatch):
    from alignloop.profile import reward_model

    monkeypatch.setattr(reward_model, "MAX_PAIRS", 300)
    pairs, _ = synthetic_pairs(700, 0.1, 3)
    est = estimate_from_table(pairs)
    assert est.support == 300 and "sample of 300 of 700 pairs" in est.detail
    # Chosen by content, not position: the same pairs in another order give the same sample.
    shuffled = pairs.take(list(reversed(range(pairs.num_rows))))
    sample = set(reward_model.sample_pairs(pairs, 300).column("chosen").to_pylist())
    assert sample == set(reward_model.sample_pairs(shuffled, 300).column("chosen").to_pylist())
    assert sample != set(pairs.slice(0, 300).column("chosen").to_pylist())
    below = estimate_from_table(pairs.slice(0, 250))
    assert below.support == 250 and "sample" not in below.detail


def test_pairable_prompts_count_majority_thumbs_and_leave_ties_out():
    rows, i = [], 0
    # prompt A: answer a1 up twice + down once (up), a2 down, a3 up once + down once (tie);
    # prompt B: only ups; prompt C: two ups and one down answer -> 2 x 1 pairs
    for prompt, answer, labels in [("A", "a1", [1, 1, 0]), ("A", "a2", [0]), ("A", "a3", [1, 0]),
                                   ("B", "b1", [1]), ("B", "b2", [1]),
                                   ("C", "c1", [1]), ("C", "c2", [1]), ("C", "c3", [0])]:
        for label in labels:
            i += 1
            rows.append({"event_id": f"t{i}", "source": "s", "ts": TS, "user_id": f"u{i}", "model_version": "v",
                         "prompt": [{"role": "user", "content": prompt}], "completion": answer, "label": bool(label)})
    shape = measure_profile(pa.Table.from_pylist(rows, schema=UNPAIRED_SCHEMA), empty_pairs(), holdout_fraction=0.0)
    assert (shape.pairable_prompts_train, shape.pairs_from_thumbs_train) == (2, 1 + 2)
    assert shape.n_unpaired_train == len(rows) and shape.n_up_train == sum(r["label"] for r in rows)


# At 40 % flips the word model is unsure everywhere and the interval widens: it still holds the truth.
@pytest.mark.parametrize("rate,per_prompt,up_share,width", [(0.0, 2, 0.5, 0.15), (0.1, 4, 0.8, 0.15),
                                                            (0.3, 2, 0.3, 0.15), (0.4, 1, 0.5, 0.5)])
def test_thumbs_reward_model_recovers_injected_flips(rate, per_prompt, up_share, width):
    thumbs, truth = flipped_thumbs(3000 // per_prompt, per_prompt, up_share, 5, rate)
    shape = measure_profile(thumbs, empty_pairs(), 0.2)
    est = shape.thumb_noise
    assert est is not None and est.signal == "reward_model_thumbs" and est.support == 3000 and est.enough
    assert est.low <= truth <= est.high, (truth, est)
    assert est.high - est.low < width
    assert _signal(shape, "reward_model_thumbs") == est


def test_thumbs_reward_model_says_when_the_words_carry_no_signal_and_planner_keeps_ipo():
    from alignloop.config import PlanningSettings, TrainingSettings
    from alignloop.planner import choose_method

    thumbs = synthetic_thumbs(400, 2, 0.5, seed=6)
    rng = random.Random(0)
    rows = [{**r, "label": rng.random() < 0.5} for r in thumbs.to_pylist()]   # verdicts unrelated to the words
    shape = measure_profile(pa.Table.from_pylist(rows, schema=UNPAIRED_SCHEMA), empty_pairs(), 0.2)
    est = _signal(shape, "reward_model_thumbs")
    assert est.flip_rate is None and not est.enough and "no signal" in est.detail and shape.thumb_noise is None
    plan = choose_method(shape, TrainingSettings(), PlanningSettings())
    assert plan.method == "ipo"
    assert any(r.startswith("thumb label noise not measured (") and r.endswith(", so treated as low: IPO")
               and "reward_model_thumbs: the reward model found no signal" in r for r in plan.reasons), plan.reasons


def test_heavily_flipped_thumbs_are_measured_and_planned_as_kto():
    from alignloop.config import PlanningSettings, TrainingSettings
    from alignloop.planner import choose_method

    noisy, _ = flipped_thumbs(2000, 2, 0.5, 7, 0.35)
    plan = choose_method(measure_profile(noisy, empty_pairs(), 0.2), TrainingSettings(), PlanningSettings())
    assert plan.method == "kto" and plan.hyperparameters["train_on"] == "thumbs", plan.reasons
    clean, _ = flipped_thumbs(2000, 2, 0.5, 7, 0.05)
    plan = choose_method(measure_profile(clean, empty_pairs(), 0.2), TrainingSettings(), PlanningSettings())
    assert plan.method == "ipo" and any("lies below kto_noise_threshold 25.0%: IPO" in r for r in plan.reasons)


def test_thumbs_over_the_cap_are_sampled_by_content_before_becoming_python_objects(monkeypatch):
    from alignloop.profile import reward_model

    monkeypatch.setattr(reward_model, "MAX_PAIRS", 400)
    thumbs = synthetic_thumbs(500, 2, 0.5, seed=8, flip_rate=0.1)
    python_rows = []
    real = reward_model.estimate_from_thumbs
    monkeypatch.setattr(reward_model, "estimate_from_thumbs",
                        lambda prompts, *a, **kw: python_rows.append(len(prompts)) or real(prompts, *a, **kw))
    est = reward_model.estimate_from_thumbs_table(thumbs)
    assert python_rows == [400] and est.support == 400 and "sample of 400 of 1000 thumbs" in est.detail
    # chosen by content, not position: the same thumbs in another order give the same estimate
    shuffled = reward_model.estimate_from_thumbs_table(thumbs.take(list(reversed(range(thumbs.num_rows)))))
    assert (shuffled.flip_rate, shuffled.low, shuffled.high) == (est.flip_rate, est.low, est.high)
    below = reward_model.estimate_from_thumbs_table(thumbs.slice(0, 300))
    assert below.support == 300 and "sample" not in below.detail
