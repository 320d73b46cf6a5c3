"""The probe judge: linear heads on the reference's own features, cross-fitted on held-out prompts.

What would make these fail: features pooled at the wrong positions (padding, the prompt) or mapped to the
wrong sequence when the scoring pass collects them; a head judging the prompts it was fitted on (which
turns pure noise into a confident judge); a head fitted on the candidate's training prompts; a fit on
too few pairs; a cached reference that loses its features.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from alignloop.datasets import EvalPair
from alignloop.errors import DataError
from alignloop.evaluation.judge import judge_fold
from alignloop.evaluation.probe import FeatureHook, ProbeJudge, answer_features
from alignloop.schema import prompt_key
from tests.shared_builds import tiny_model


def _pairs(n: int, good: str = "Thank you, happy to help!", bad: str = "Ugh. No.") -> list[EvalPair]:
    return [EvalPair([{"role": "user", "content": f"What is {i} + {i % 7}?" + " please" * (i % 5)}], good, bad, 1)
            for i in range(n)]


@pytest.fixture(scope="module")
def tiny():
    from alignloop.models import load_causal_lm, load_tokenizer

    folder = tiny_model()
    return folder, load_causal_lm(folder, device="cpu").eval(), load_tokenizer(folder)


def test_features_kept_by_the_scoring_pass_equal_a_separate_pass(tiny):
    from alignloop.evaluation.scoring import encode_pairs, score_pairs

    _, model, tokenizer = tiny
    pairs = [EvalPair(p.prompt, f"Answer {'long ' * (i % 6)}{i}", f"No{'!' * (i % 4)}", 1)
             for i, p in enumerate(_pairs(10))]
    encoded = encode_pairs(tokenizer, pairs, 64)
    lengths = {len(ids) for ids, _ in encoded.sequences}
    assert len(lengths) > 3  # batches are padded: pooling must skip the pad positions
    hook = FeatureHook(model, encoded.sequences)
    try:
        score_pairs(model, encoded, pad_id=tokenizer.pad_token_id, batch_size=3, device="cpu",
                    before_batch=hook.expect)
    finally:
        hook.close()
    hooked = hook.array()
    separate = answer_features(model, encoded.sequences, pad_id=tokenizer.pad_token_id, batch_size=1, device="cpu")
    assert hooked.shape == (len(encoded.sequences), 2 * model.config.hidden_size)
    np.testing.assert_allclose(hooked, separate, atol=2e-4, rtol=1e-3)
    # The pooled answer is the answer's: two sequences with one prompt and different answers differ.
    assert not np.allclose(separate[encoded.chosen_index[0]], separate[encoded.rejected_index[0]])


def _fitted(pairs: list[EvalPair], chosen: np.ndarray, rejected: np.ndarray) -> ProbeJudge:
    judge = ProbeJudge()
    assert judge.fit(pairs, chosen, rejected)
    known = {(prompt_key(p.prompt), a): f for p, c, r in zip(pairs, chosen, rejected, strict=True)
             for a, f in ((p.chosen, c), (p.rejected, r))}
    judge.attach(lambda prompts, answers: np.stack([known[(prompt_key(p), a)]
                                                    for p, a in zip(prompts, answers, strict=True)]))
    return judge


def _distinct(n: int) -> list[EvalPair]:
    return [EvalPair([{"role": "user", "content": f"Question {i}?"}], f"good {i}", f"bad {i}", 1) for i in range(n)]


def test_a_direction_people_prefer_is_learned_from_the_other_fold():
    rng = np.random.default_rng(0)
    pairs, d = _distinct(200), 20
    direction = rng.normal(size=d)
    chosen, rejected = rng.normal(size=(200, d)), rng.normal(size=(200, d))
    flip = (chosen - rejected) @ direction < 0  # the preferred answer is the one further along the direction
    chosen[flip], rejected[flip] = rejected[flip].copy(), chosen[flip].copy()
    judge = _fitted(pairs, chosen, rejected)
    verdicts = judge.prefer([p.prompt for p in pairs], [p.chosen for p in pairs], [p.rejected for p in pairs])
    assert np.mean(verdicts) > 0.85
    assert judge.n_fit_pairs == 200 and judge.fitted_prompt_keys == {prompt_key(p.prompt) for p in pairs}
    for k, head in enumerate(judge.heads):  # each head learned from the pairs outside its fold only
        assert head.n_pairs == sum(judge_fold(p.prompt) != k for p in pairs)
    assert judge.provenance.startswith("linear heads on the reference model's features, cross-fitted on 200")


def test_a_head_never_judges_the_prompts_it_learned_from():
    """Labels unrelated to the features: a head fitted on all pairs would memorise them (more features than
    pairs per fold), a cross-fitted one must stay at chance."""
    rng = np.random.default_rng(1)
    pairs = _distinct(80)
    chosen, rejected = rng.normal(size=(80, 200)), rng.normal(size=(80, 200))
    judge = _fitted(pairs, chosen, rejected)
    verdicts = judge.prefer([p.prompt for p in pairs], [p.chosen for p in pairs], [p.rejected for p in pairs])
    assert 0.3 < np.mean(verdicts) < 0.7
    from alignloop.evaluation.probe import _fit

    in_sample = (chosen - rejected) @ _fit(chosen - rejected, 1.0)
    assert np.mean(in_sample > 0) > 0.95  # what judging its own prompts would have reported


def test_a_head_fitted_on_training_prompts_is_refused_and_too_few_pairs_fit_nothing():
    pairs = _distinct(40)
    features = np.zeros((40, 4))
    trained_on = frozenset(prompt_key(p.prompt) for p in pairs[:3])
    with pytest.raises(DataError, match="fitted on 3 prompts the candidate trained on"):
        ProbeJudge(training_prompt_keys=trained_on).fit(pairs, features, features)
    few = ProbeJudge()
    assert not few.fit(pairs[:6], features[:6], features[:6])
    with pytest.raises(RuntimeError, match="not fitted"):
        few.prefer([pairs[0].prompt], ["a"], ["b"])


def test_an_evaluation_fits_the_probe_on_the_reference_pass_and_reuses_cached_features(tmp_path, caplog):
    from alignloop.evaluation.candidate import EvalOptions, evaluate_candidate

    folder = tiny_model()
    held = _pairs(40)
    options = EvalOptions(batch_size=4, max_length=64, bootstrap_samples=200, generation_prompts=12,
                          max_new_tokens=6, kl_samples=0, cache_dir=tmp_path / "cache")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with caplog.at_level(logging.INFO, logger="alignloop.evaluation.progress"):
            first = evaluate_candidate(folder, folder, held, beta=0.1, options=options, device="cpu",
                                       judge=ProbeJudge())
            second = evaluate_candidate(folder, folder, held, beta=0.1, options=options, device="cpu",
                                        judge=ProbeJudge())
    finally:
        torch.set_num_threads(threads)
    for report in (first, second):
        m = report.metrics()
        assert report.judge.kind == "probe" and report.judge.usable and m["eval_judge_accuracy"] == 1.0
        # Candidate == reference: identical answers tie.
        assert (m["eval_judge_win_rate"], m["eval_judge_win_rate_ci_low"], m["eval_judge_win_rate_ci_high"]) == (
            0.5, 0.5, 0.5)
        assert report.judge.n_fit_pairs == 40 and "judge" in report.seconds_parts
    assert second.reference_cached and "read the reference's features" not in caplog.text
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1


def test_too_few_held_out_pairs_give_no_probe_and_say_so(caplog):
    from alignloop.evaluation.candidate import EvalOptions, evaluate_candidate

    folder = tiny_model()
    options = EvalOptions(batch_size=4, max_length=64, bootstrap_samples=100, generation_prompts=4,
                          max_new_tokens=4, kl_samples=0)
    with caplog.at_level(logging.WARNING):
        report = evaluate_candidate(folder, folder, _pairs(6), beta=0.1, options=options, device="cpu",
                                    judge=ProbeJudge())
    assert report.judge is None and report.win_rate is None and "eval_judge_win_rate" not in report.metrics()
    assert "too few held-out pairs (6) to cross-fit a judge" in caplog.text
