"""Evaluation on the tiny offline model: fast scoring that matches the slow way, the reference cache,
the champion in the same run, per-pair scores that recompute the metrics, and the guards."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from alignloop.datasets import EvalPair, eval_set_hash
from alignloop.evaluation.candidate import EvalOptions, evaluate_candidate
from alignloop.evaluation.guards import capability_text
from alignloop.evaluation.scoring import encode_answer, encode_pairs, score_pairs
from alignloop.models import load_causal_lm, load_tokenizer

pytestmark = pytest.mark.slow

CONTRACT = {
    "eval_pref_accuracy_reference", "eval_pref_accuracy_candidate", "eval_pref_accuracy_delta",
    "eval_pref_accuracy_reference_ci_low", "eval_pref_accuracy_reference_ci_high",
    "eval_pref_accuracy_candidate_ci_low", "eval_pref_accuracy_candidate_ci_high",
    "eval_pref_accuracy_delta_ci_low", "eval_pref_accuracy_delta_ci_high",
    "eval_kl_reference", "eval_length_ratio", "eval_ppl_reference", "eval_ppl_candidate", "eval_ppl_rise",
    "eval_pairs", "eval_seconds",
}
CHAMPION = {"eval_pref_accuracy_champion", "eval_pref_accuracy_champion_delta",
            "eval_pref_accuracy_champion_delta_ci_low", "eval_pref_accuracy_champion_delta_ci_high"}

@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tiny model's matrices are too small to split across threads; on a busy machine threads only wait."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def adapter_dir(tiny_dir, tmp_path_factory) -> Path:
    """A LoRA candidate that really differs from its base (random, not zero, adapter weights)."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(load_causal_lm(tiny_dir), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                                init_lora_weights=False))
    folder = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(str(folder))
    return folder


def _pairs(n_prompts: int = 10) -> list[EvalPair]:
    out = []
    for i in range(n_prompts):
        prompt = [{"role": "system", "content": "You are a helpful assistant."},
                  {"role": "user", "content": f"What is {i} + {i}?"}]
        out.append(EvalPair(prompt, f"{i} + {i} = {2 * i}. Happy to help!", "Ugh, look it up yourself.", 2))
        out.append(EvalPair(prompt, f"{i} + {i} = {2 * i}.", f"{i} + {i} = {2 * i + 1}.", 1))
    return out


def _options(tmp_path: Path, **kw) -> EvalOptions:
    base = dict(batch_size=4, max_length=64, bootstrap_samples=300, generation_prompts=3, max_new_tokens=8,
                kl_samples=1, ppl_text=capability_text()[:600], cache_dir=tmp_path / "cache")
    return EvalOptions(**{**base, **kw})


def test_evaluation_feeds_a_long_pair_the_exact_token_ids_training_feeds(tiny_dir):
    """A pair whose prompt alone exceeds max_length, with answers of different lengths: training trims the
    shared prompt for the longer answer (tokenize.truncate_pair), and evaluation must score those same ids,
    not each answer fitted on its own (which would give the short answer more prompt)."""
    from alignloop.training.data import fit_rows, tokenize_pairs

    tokenizer = load_tokenizer(tiny_dir)
    prompt = [{"role": "user", "content": " ".join(f"question {i} please" for i in range(40)) + " what is 2 + 2?"}]
    row = {"prompt": prompt, "chosen": "Four.", "rejected": "It is four, and " * 6 + "that is all."}
    max_length = 48
    trained = fit_rows(tokenize_pairs(tokenizer, [row], "fp"), max_length, cap=1024).rows[0]
    untrimmed = tokenize_pairs(tokenizer, [row], "fp")[0]
    assert len(untrimmed["prompt_ids"]) > max_length                       # the prompt alone does not fit
    assert len(trained["chosen_ids"]) < len(trained["rejected_ids"])      # the answers differ in length

    encoded = encode_pairs(tokenizer, [EvalPair(prompt, row["chosen"], row["rejected"], 1)], max_length)
    for side, (ids, start) in (("chosen", encoded.chosen[0]), ("rejected", encoded.rejected[0])):
        assert ids == trained["prompt_ids"] + trained[f"{side}_ids"], side
        assert start == len(trained["prompt_ids"]), side
    assert encoded.truncated == 1
    # One answer alone (a thumbs row) is fitted as training fits an unpaired row.
    (ids, start), cut = encode_answer(tokenizer, prompt, row["chosen"], max_length)
    single = fit_rows([{k: untrimmed[k] for k in ("prompt_ids", "chosen_ids")}], max_length, cap=1024).rows[0]
    assert (ids, start, cut) == (single["prompt_ids"] + single["chosen_ids"], len(single["prompt_ids"]), True)


def test_batched_length_sorted_scoring_matches_one_sequence_at_a_time(tiny_dir):
    tokenizer = load_tokenizer(tiny_dir)
    model = load_causal_lm(tiny_dir).eval()
    encoded = encode_pairs(tokenizer, _pairs(5), max_length=64)
    pad = tokenizer.pad_token_id
    batched = score_pairs(model, encoded, pad_id=pad, batch_size=6, device="cpu")
    single = score_pairs(model, encoded, pad_id=pad, batch_size=1, device="cpu")  # one pair (2 rows) a batch
    assert batched.logp_chosen == pytest.approx(single.logp_chosen, abs=1e-4)
    assert batched.logp_rejected == pytest.approx(single.logp_rejected, abs=1e-4)
    # The slow way, by hand, for the first pair's chosen answer.
    import torch

    ids, start = encoded.chosen[0]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1], -1)
    by_hand = sum(logp[t - 1, ids[t]].item() for t in range(start, len(ids)))
    assert batched.logp_chosen[0] == pytest.approx(by_hand, abs=1e-4)
    assert batched.n_chosen[0] == len(ids) - start


def test_an_answer_shared_by_several_pairs_is_scored_once(tiny_dir):
    tokenizer = load_tokenizer(tiny_dir)
    prompt = [{"role": "user", "content": "What is 2 + 2?"}]
    pairs = [EvalPair(prompt, "4.", "5.", 1), EvalPair(prompt, "4.", "Ugh.", 1), EvalPair(prompt, "5.", "Ugh.", 1)]
    encoded = encode_pairs(tokenizer, pairs, max_length=64)
    assert len(encoded.sequences) == 3 and encoded.chosen_index == [0, 0, 1] and encoded.rejected_index == [1, 2, 2]
    scores = score_pairs(load_causal_lm(tiny_dir).eval(), encoded, pad_id=tokenizer.pad_token_id, batch_size=8,
                         device="cpu")
    assert scores.logp_chosen[0] == scores.logp_chosen[1] and scores.logp_rejected[0] == scores.logp_chosen[2]


def test_truncated_pairs_are_counted(tiny_dir):
    tokenizer = load_tokenizer(tiny_dir)
    long_prompt = [{"role": "user", "content": "please " * 80 + "what is 2 + 2?"}]
    pairs = _pairs(2) + [EvalPair(long_prompt, "4", "5", 1)]
    assert encode_pairs(tokenizer, pairs, max_length=64).truncated == 1
    assert encode_pairs(tokenizer, pairs, max_length=512).truncated == 0


def test_candidate_against_reference_and_champion_with_per_pair_scores(tmp_path, tiny_dir, adapter_dir):
    pairs = _pairs()
    report = evaluate_candidate(adapter_dir, tiny_dir, pairs, beta=0.1, options=_options(tmp_path), device="cpu",
                                champion_dir=tiny_dir, champion_version="3")
    metrics = report.metrics()
    assert CONTRACT | CHAMPION <= set(metrics)
    assert report.eval_set_hash == eval_set_hash(pairs) and report.champion_version == "3"
    assert report.champion_eval_set_hash == report.eval_set_hash  # scored on these very pairs, in this run
    # The champion here is the base model itself: it must score exactly as the reference does.
    assert metrics["eval_pref_accuracy_champion"] == pytest.approx(metrics["eval_pref_accuracy_reference"])
    assert metrics["eval_pref_accuracy_champion_delta"] == pytest.approx(metrics["eval_pref_accuracy_delta"])
    assert metrics["eval_pref_accuracy_delta_ci_low"] <= metrics["eval_pref_accuracy_delta"] \
        <= metrics["eval_pref_accuracy_delta_ci_high"]
    # The random adapter moves the model: it drifts from the reference and reads the fixed text differently.
    assert metrics["eval_kl_reference"] != 0.0
    assert metrics["eval_ppl_rise_ci_low"] <= metrics["eval_ppl_rise"] <= metrics["eval_ppl_rise_ci_high"]
    assert metrics["eval_ppl_rise"] == pytest.approx(metrics["eval_ppl_candidate"] / metrics["eval_ppl_reference"] - 1)
    assert metrics["eval_ppl_candidate"] != pytest.approx(metrics["eval_ppl_reference"])

    path = report.write(tmp_path / "run")
    written = json.loads(path.read_text())
    assert written["metrics"] == pytest.approx(metrics)
    assert written["champion_version"] == "3" and written["judge"] is None
    assert written["champion_eval_set_hash"] == report.eval_set_hash
    assert len(written["samples"]) == 3
    assert set(written["samples"][0]) >= {"prompt", "conversation", "candidate", "champion", "reference",
                                          "candidate_degenerate"}
    assert written["samples"][0]["conversation"][0] == {"role": "system", "content": "You are a helpful assistant."}
    rows = [json.loads(line) for line in (tmp_path / "run" / "per_pair_scores.jsonl").read_text().splitlines()]
    assert len(rows) == len(pairs)

    def accuracy(model: str) -> float:  # recomputed from the raw scores alone
        wins = [r[f"{model}_logp_chosen"] / r["n_tokens_chosen"] > r[f"{model}_logp_rejected"] / r["n_tokens_rejected"]
                for r in rows]
        return sum(wins) / len(wins)

    assert accuracy("candidate") == pytest.approx(metrics["eval_pref_accuracy_candidate"])
    assert accuracy("reference") == pytest.approx(metrics["eval_pref_accuracy_reference"])
    assert accuracy("champion") == pytest.approx(metrics["eval_pref_accuracy_champion"])


def test_reference_scores_come_from_the_cache_for_the_same_base_and_set(tmp_path, tiny_dir, adapter_dir):
    options = _options(tmp_path, generation_prompts=0, ppl_text=None)
    pairs = _pairs()
    first = evaluate_candidate(adapter_dir, tiny_dir, pairs, beta=0.1, options=options, device="cpu")
    again = evaluate_candidate(adapter_dir, tiny_dir, pairs, beta=0.1, options=options, device="cpu")
    other_set = evaluate_candidate(adapter_dir, tiny_dir, pairs[:-2], beta=0.1, options=options, device="cpu")
    assert (first.reference_cached, again.reference_cached, other_set.reference_cached) == (False, True, False)
    assert again.pref_accuracy_reference == first.pref_accuracy_reference
    assert [r["reference_logp_chosen"] for r in again.per_pair] == [r["reference_logp_chosen"] for r in first.per_pair]
    assert "eval_kl_reference" not in again.metrics()  # generation checks off: no made-up value


@pytest.mark.skipif(not (torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()),
                    reason="bfloat16 evaluation runs only on a CPU that computes it natively")
def test_bfloat16_evaluation_runs_in_bfloat16_and_never_reads_float32_scores_from_the_cache(tmp_path, tiny_dir,
                                                                                          adapter_dir):
    pairs = _pairs()
    kw = dict(beta=0.1, device="cpu")
    f32 = evaluate_candidate(adapter_dir, tiny_dir, pairs, **kw,
                             options=_options(tmp_path, generation_prompts=0, ppl_text=None, precision="float32"))
    bf16 = evaluate_candidate(adapter_dir, tiny_dir, pairs, **kw,
                              options=_options(tmp_path, generation_prompts=0, ppl_text=None, precision="bfloat16"))
    assert (f32.reference_cached, bf16.reference_cached) == (False, False)  # one cache, a key per precision
    assert (f32.to_dict()["precision"], bf16.to_dict()["precision"]) == ("float32", "bfloat16")
    for model in ("candidate", "reference"):
        a = [r[f"{model}_logp_chosen"] for r in f32.per_pair]
        b = [r[f"{model}_logp_chosen"] for r in bf16.per_pair]
        assert a != b  # the forward passes really ran in bfloat16
        assert b == pytest.approx(a, rel=0.05)  # and measure the same thing


def test_a_candidate_identical_to_the_reference_shows_no_drift_and_the_gate_never_passes_it(tmp_path, tiny_dir,
                                                                                            caplog):
    import logging

    from alignloop.config import PromotionSettings
    from alignloop.gate import PASS, decide, input_from_report

    with caplog.at_level(logging.INFO, logger="alignloop.evaluation.progress"):
        report = evaluate_candidate(tiny_dir, tiny_dir, _pairs(12), beta=0.1,
                                    options=_options(tmp_path, generation_prompts=12), device="cpu")
    # What a piped log shows while it runs: each part as it starts, and the seconds each took.
    lines = [r.getMessage() for r in caplog.records if r.name == "alignloop.evaluation.progress"]
    assert lines[0] in ("evaluation: scoring 24 held-out pairs over 12 prompts (48 distinct answers per model, "
                        f"{precision})" for precision in ("float32", "bfloat16"))
    assert "evaluation: candidate answering 12 held-out prompts" in lines
    assert lines[-1].startswith("evaluation: done in ") and "generation" in lines[-1]
    m = report.metrics()
    assert m["eval_pref_accuracy_delta"] == 0.0
    assert (m["eval_pref_accuracy_delta_ci_low"], m["eval_pref_accuracy_delta_ci_high"]) == (0.0, 0.0)
    assert m["eval_kl_reference"] == pytest.approx(0.0, abs=1e-4)
    assert m["eval_length_ratio"] == pytest.approx(1.0) and m["eval_length_ratio_ci_high"] == pytest.approx(1.0)
    assert m["eval_ppl_rise"] == pytest.approx(0.0, abs=1e-6)
    assert m["eval_ppl_rise_ci_high"] == pytest.approx(0.0, abs=1e-6)  # the text has blocks enough for an interval
    assert (m["eval_degenerate_rate_delta"], m["eval_degenerate_rate_delta_ci_high"]) == (0.0, 0.0)
    assert m["eval_prompts"] == 12 and m["eval_generation_prompts"] == 12 and m["eval_kl_prompts"] == 12
    assert [s["candidate"] for s in report.samples] == [s["reference"] for s in report.samples]
    assert math.isfinite(m["eval_seconds"]) and m["eval_seconds"] > 0
    assert {"eval_seconds_scoring", "eval_seconds_generation", "eval_seconds_guards"} <= set(m)
    assert replace(report, seconds=1.0).metrics()["eval_seconds"] == 1.0
    verdict = decide(input_from_report(json.loads(report.write(tmp_path / "run").read_text()), None),
                     PromotionSettings(min_prompts=10))
    assert verdict.verdict != PASS and any("lower bound +0.000 ≤ +0.010" in line for line in verdict.lines)


def test_unset_max_new_tokens_lets_answers_run_as_long_as_the_preferred_answers_do(tmp_path, tiny_dir, caplog):
    """evaluation.max_new_tokens unset: the models answer up to the limit the held-out pairs' preferred answers
    give (answer_token_limit), said in the log, the report and its metrics; a set value is kept as it is."""
    import logging

    from alignloop.evaluation.answers import answer_token_limit

    long = " ".join(f"step {i}: open the menu, pick the entry and save it." for i in range(6))
    pairs = [replace(p, chosen=f"{p.chosen} {long}") for p in _pairs(4)]
    limit = answer_token_limit(load_tokenizer(tiny_dir), [p.chosen for p in pairs])
    assert limit > 32                                        # set by these answers, not by the lower bound
    options = _options(tmp_path, max_new_tokens=None, generation_prompts=4, kl_samples=0, ppl_text=None)
    with caplog.at_level(logging.INFO, logger="alignloop.evaluation.progress"):
        report = evaluate_candidate(tiny_dir, tiny_dir, pairs, beta=0.1, options=options, device="cpu")
    assert report.max_new_tokens == limit and report.metrics()["eval_max_new_tokens"] == limit
    assert json.loads(report.write(tmp_path / "run").read_text())["generation"]["max_new_tokens"] == limit
    assert any(f"answers up to {limit} new tokens" in r.getMessage() for r in caplog.records)
    kept = evaluate_candidate(tiny_dir, tiny_dir, pairs, beta=0.1, device="cpu",
                              options=replace(options, max_new_tokens=8, cache_dir=tmp_path / "cache2"))
    assert kept.max_new_tokens == 8


def test_on_too_few_prompts_the_metrics_carry_no_interval_rather_than_a_zero_width_one(tmp_path, tiny_dir):
    m = evaluate_candidate(tiny_dir, tiny_dir, _pairs(4), beta=0.1, options=_options(tmp_path), device="cpu").metrics()
    assert m["eval_pref_accuracy_delta"] == 0.0 and m["eval_prompts"] == 4
    assert "eval_pref_accuracy_delta_ci_low" not in m and "eval_kl_reference_ci_low" not in m


class _RuleJudge:
    """Prefers an answer with GOOD in it, then the longer one: graded perfect on _judged_pairs, and a
    verdict on any two answers that the test can recompute."""

    kind, provenance, n_fit_pairs, fitted_prompt_keys = "rule", "a rule: GOOD first, then the longer answer", 0, None

    @staticmethod
    def verdict(a: str, b: str) -> float:
        x, y = ("GOOD" in a, len(a)), ("GOOD" in b, len(b))
        return 1.0 if x > y else 0.0 if x < y else 0.5

    def prefer(self, prompts, first, second) -> list[float]:
        return [self.verdict(a, b) for a, b in zip(first, second, strict=True)]


def _judged_pairs(n_prompts: int = 12) -> list[EvalPair]:
    return [EvalPair([{"role": "user", "content": f"What is {i} + {i}?"}], f"It is {2 * i}. GOOD, happy to help.",
                     "No.", 1) for i in range(n_prompts)]


def test_the_sampled_win_rate_judges_sampled_answers_generated_once(tmp_path, tiny_dir, adapter_dir, monkeypatch):
    """The win rate on sampled answers judges the candidate's KL samples (not generated again) against the
    reference's sampled answers to the same prompts (sampled once per prompt set, then cached); never the
    greedy answers."""
    import alignloop.evaluation.generation as generation
    from alignloop.evaluation.answers import REFERENCE_SEED_OFFSET
    from alignloop.evaluation.scoring import ModelSet

    pairs, judge = _judged_pairs(), _RuleJudge()
    options = _options(tmp_path, generation_prompts=12, kl_samples=2, ppl_text=None)
    prompts = [p.prompt for p in pairs]
    asked = [p for p in prompts for _ in range(2)]
    gen = dict(max_new_tokens=options.max_new_tokens, batch_size=options.batch_size, device="cpu",
               max_prompt_tokens=options.max_length)
    models = ModelSet(adapter_dir, tiny_dir, None, "cpu")
    drawn, greedy = {}, {}
    for name, seed in (("candidate", options.seed), ("reference", options.seed + REFERENCE_SEED_OFFSET)):
        with models.use(name) as model:
            drawn[name] = generation.generate_answers(model, load_tokenizer(tiny_dir), asked, sample=True, seed=seed,
                                                      **gen).texts
            greedy[name] = generation.generate_answers(model, load_tokenizer(tiny_dir), prompts, **gen).texts
    expected = sum(map(judge.verdict, drawn["candidate"], drawn["reference"])) / len(asked)
    from_greedy = sum(map(judge.verdict, greedy["candidate"], greedy["reference"])) / len(prompts)
    assert drawn["candidate"][::2] != greedy["candidate"] and expected != from_greedy  # the test can tell them apart

    calls: list[bool] = []
    original = generation.generate_answers

    def counted(*args, **kw):
        calls.append(kw.get("sample", False))
        return original(*args, **kw)

    monkeypatch.setattr(generation, "generate_answers", counted)
    first = evaluate_candidate(adapter_dir, tiny_dir, pairs, beta=0.1, options=options, device="cpu", judge=judge)
    assert sorted(calls) == [False, False, True, True]  # greedy twice, sampled once per model
    m = first.metrics()
    assert m["eval_judge_sampled_win_rate"] == pytest.approx(expected)
    assert m["eval_judge_win_rate"] == pytest.approx(from_greedy)
    assert m["eval_judge_sampled_win_rate_ci_low"] <= expected <= m["eval_judge_sampled_win_rate_ci_high"]
    assert m["eval_judge_sampled_prompts"] == 12 and m["eval_kl_prompts"] == 12
    assert {"eval_seconds_reference_sampling", "eval_seconds_judge_sampled"} <= set(m)
    judged = json.loads(first.write(tmp_path / "run").read_text())["judge"]
    assert judged["sampled_win_rate"]["value"] == pytest.approx(expected)
    assert (judged["sampled_against"], judged["sampled_prompts"], judged["sampled_per_prompt"]) == ("reference", 12, 2)
    assert judged["reference_samples_cached"] is False

    calls.clear()
    again = evaluate_candidate(adapter_dir, tiny_dir, pairs, beta=0.1, options=options, device="cpu", judge=judge)
    assert sorted(calls) == [False, False, True] and again.reference_samples_cached is True
    assert again.metrics()["eval_judge_sampled_win_rate"] == pytest.approx(expected)
    # On a CPU answers are generated in float32 whatever precision scores them: the same samples, read back.
    calls.clear()
    other = evaluate_candidate(adapter_dir, tiny_dir, pairs, beta=0.1, options=replace(options, precision="float32"),
                               device="cpu", judge=judge)
    assert sorted(calls) == [False, False, True] and other.reference_samples_cached is True
    # An unusable judge's win rates are not metrics, the sampled one included.
    untrusted = replace(first, judge=replace(first.judge, usable=False)).metrics()
    assert "eval_judge_sampled_win_rate" not in untrusted and "eval_judge_win_rate" not in untrusted
