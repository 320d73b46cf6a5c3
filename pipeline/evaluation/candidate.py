"""Evaluate a candidate against the reference (its base) and the champion, on one frozen held-out set.

Preference accuracy: the share of held-out pairs where a model's mean per-token log-likelihood of the
chosen answer beats the rejected one, with a 95% interval from a paired bootstrap over prompts.
Implicit reward (DPO's view of the candidate): r(y) = beta * (log pi_candidate(y) - log pi_reference(y));
reward accuracy is the share of pairs with r(chosen) > r(rejected), the margin the mean difference.
Then the models answer held-out prompts themselves (answers.py): a judge independent of the
candidate's training rows picks winners, and the candidate's answers give its length drift, its share
of degenerate answers and (sampled) its KL from the reference. Perplexity on a fixed text guards
general ability. Each part's seconds are reported, and progress goes to the log as it happens.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from alignloop.datasets import EvalPair, eval_set_hash
from alignloop.evaluation.answers import answer_token_limit, generation_checks
from alignloop.evaluation.bootstrap import Interval, interval_or_point, paired_delta
from alignloop.evaluation.guards import ppl_rise_interval
from alignloop.evaluation.judge import Judge, grade_judge
from alignloop.evaluation.probe import FeatureHook, ProbeJudge, answer_features
from alignloop.evaluation.results import EvalReport
from alignloop.evaluation.scoring import (
    ModelSet,
    PairScores,
    ScoreCache,
    encode_pairs,
    model_identity,
    score_pairs,
    text_logprobs,
)
from alignloop.models import inference_precision, load_tokenizer, pick_device
from alignloop.schema import prompt_key

log = logging.getLogger(__name__)
progress = logging.getLogger("alignloop.evaluation.progress")  # INFO lines when no terminal shows the bars


@dataclass(frozen=True)
class EvalOptions:
    """The knobs of one evaluation (EvaluationSettings, resolved)."""

    batch_size: int = 8
    max_length: int = 256
    bootstrap_samples: int = 2000
    seed: int = 0
    generation_prompts: int = 32
    max_new_tokens: int | None = None      # None: from the held-out pairs' preferred answers (answer_token_limit)
    kl_samples: int = 1
    ppl_text: str | None = None            # None skips the perplexity guard
    cache_dir: Path | None = None          # None: no reference-score cache
    judge_min_accuracy: float = 0.6
    judge_accuracy_pairs: int | None = 200
    precision: str = "auto"                # evaluation.precision: auto, float32 or bfloat16


@dataclass(frozen=True)
class _Scores:
    """Every model's scores of the held-out pairs."""

    candidate: PairScores
    reference: PairScores
    champion: PairScores | None
    reference_cached: bool
    features: np.ndarray | None = None  # the reference's pooled features per distinct answer (a probe judge's)


def evaluate_candidate(candidate_dir: Path, base_dir: Path, pairs: list[EvalPair], *, beta: float,
                       options: EvalOptions, device: str = "auto", champion_dir: Path | None = None,
                       champion_version: str | None = None, judge: Judge | None = None,
                       eval_sample_share: float = 1.0,
                       on_progress: Callable[[int, int], None] | None = None) -> EvalReport:
    """Score reference, candidate (and champion) on the same held-out pairs, then the generation checks.

    on_progress(done, total) is called after each scoring batch, counting answers scored.
    """
    if not pairs:
        raise ValueError("no held-out pairs to evaluate on")
    started = time.perf_counter()
    device = pick_device(device)
    tokenizer = load_tokenizer(base_dir)  # training never changes the tokenizer
    set_hash = eval_set_hash(pairs)
    if options.max_new_tokens is None and options.generation_prompts:
        options = replace(options, max_new_tokens=answer_token_limit(tokenizer, [p.chosen for p in pairs]))
        progress.info("evaluation: answers up to %d new tokens (the held-out preferred answers' 95th percentile "
                      "length, rounded up; evaluation.max_new_tokens sets it)", options.max_new_tokens)
    encoded = encode_pairs(tokenizer, pairs, options.max_length)  # once, for every model
    precision = inference_precision(options.precision, device)
    models = ModelSet(candidate_dir, base_dir, champion_dir, device, precision)
    cache = ScoreCache(options.cache_dir)
    base_id = model_identity(base_dir)
    progress.info("evaluation: scoring %d held-out pairs over %d prompts (%d distinct answers per model, %s)",
                  len(pairs), len({prompt_key(p.prompt) for p in pairs}), len(encoded.sequences), precision)
    probe = judge if isinstance(judge, ProbeJudge) else None
    scores = _score_models(models, encoded, tokenizer, cache.key("pairs", base_id, set_hash, options.max_length,
                                                                  device, precision), cache, options, device, on_progress,
                           features=probe is not None)
    parts = {"scoring": time.perf_counter() - started}
    if probe is not None:
        fit_started = time.perf_counter()
        judge = _fitted_probe(probe, pairs, encoded, scores.features, models, tokenizer, options, device)
        parts["judge"] = time.perf_counter() - fit_started
    generation = _generation_checks(models, tokenizer, pairs, options, device, judge,
                                    against="champion" if champion_dir is not None else "reference")
    for part, seconds in generation.pop("seconds_parts", {}).items():
        parts[part] = parts.get(part, 0.0) + seconds
    guard_started = time.perf_counter()
    ppl = _perplexity_guard(models, tokenizer, options, cache, base_id, device)
    parts["guards"] = parts.pop("kl", 0.0) + time.perf_counter() - guard_started
    report = _report(pairs, scores, beta, options, set_hash=set_hash, truncated=encoded.truncated,
                     eval_sample_share=eval_sample_share, champion_version=champion_version,
                     ppl=ppl, generation={**generation, "seconds_parts": parts})
    report = replace(report, seconds=time.perf_counter() - started, precision=precision,
                     max_new_tokens=options.max_new_tokens if options.generation_prompts else None)
    progress.info("evaluation: done in %.0f s (%s)", report.seconds,
                  ", ".join(f"{k} {v:.0f} s" for k, v in parts.items()))
    log.info("evaluation: %s", report.metrics())
    return report


def _score_models(models: ModelSet, encoded, tokenizer, ref_key: str, cache: ScoreCache, options: EvalOptions,
                  device: str, on_progress: Callable[[int, int], None] | None, *, features: bool = False) -> _Scores:
    """Score every pair with the candidate, the reference (unless its scores are cached) and the champion;
    on_progress counts the answers scored. With `features`, the reference's pass also keeps each answer's
    pooled features (cached beside its scores; a separate pass when only the scores were cached)."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    reference = cache.get_pair_scores(ref_key)
    reference_cached = reference is not None
    features_key = cache.key("features", ref_key)
    found = cache.get_array(features_key) if features else None
    if found is not None and len(found) != len(encoded.sequences):
        found = None
    separate_features = features and found is None and reference_cached
    total = len(encoded.sequences) * (1 + (not reference_cached) + (models.champion_dir is not None)
                                      + separate_features)
    done = 0

    def advance(k: int) -> None:
        nonlocal done
        done += k
        if on_progress:
            on_progress(done, total)

    kw = dict(pad_id=pad_id, batch_size=options.batch_size, device=device, on_batch=advance)
    with models.use("candidate") as model:
        candidate = _scored("candidate", model, encoded, kw)
    if reference is None:
        with models.use("reference") as model:
            hook = FeatureHook(model, encoded.sequences) if features and found is None else None
            try:
                reference = _scored("reference", model, encoded, {**kw, "before_batch": hook.expect if hook else None})
            finally:
                if hook is not None:
                    hook.close()
        cache.put_pair_scores(ref_key, reference)
        if hook is not None:
            found = hook.array()
            cache.put_array(features_key, found)
    elif separate_features:
        started = time.perf_counter()
        with models.use("reference") as model:
            found = answer_features(model, encoded.sequences, pad_id=pad_id, batch_size=options.batch_size,
                                    device=device, on_batch=advance)
        cache.put_array(features_key, found)
        progress.info("evaluation: read the reference's features in %.0f s", time.perf_counter() - started)
    champion: PairScores | None = None
    if models.champion_dir is not None:
        with models.use("champion") as model:
            champion = _scored("champion", model, encoded, kw)
    return _Scores(candidate, reference, champion, reference_cached, found)


def _fitted_probe(judge: ProbeJudge, pairs: list[EvalPair], encoded, features: np.ndarray, models: ModelSet,
                  tokenizer, options: EvalOptions, device: str) -> ProbeJudge | None:
    """The probe judge fitted on the scored pairs' features, able to read the models' own answers; None when
    too few pairs to cross-fit it."""
    from alignloop.evaluation.folds import MIN_FIT_PAIRS
    from alignloop.evaluation.scoring import _pad_id, encode_answer

    progress.info("evaluation: fitting the judge's heads on the reference's features of %d held-out pairs",
                  len(pairs))
    if not judge.fit(pairs, features[encoded.chosen_index], features[encoded.rejected_index]):
        log.warning("too few held-out pairs (%d) to cross-fit a judge (at least %d per fold): no win rate this run; "
                    "name one in evaluation.judge (endpoint_url or model_path)", len(pairs), MIN_FIT_PAIRS)
        return None

    def featurise(prompts, answers) -> np.ndarray:
        sequences = [encode_answer(tokenizer, p, a, options.max_length)[0] for p, a in zip(prompts, answers,
                                                                                           strict=True)]
        with models.use("reference") as model:
            return answer_features(model, sequences, pad_id=_pad_id(tokenizer), batch_size=options.batch_size,
                                   device=device)

    judge.attach(featurise)
    return judge


def _scored(name: str, model, encoded, kw: dict) -> PairScores:  # kw: score_pairs' keywords
    started = time.perf_counter()
    scores = score_pairs(model, encoded, **kw)
    progress.info("evaluation: scored the %s in %.0f s", name, time.perf_counter() - started)
    return scores


def _perplexity_guard(models: ModelSet, tokenizer, options: EvalOptions, cache: ScoreCache, base_id: str,
                      device: str) -> dict:
    """Perplexity of reference (cached) and candidate on the capability text, and the rise's interval; empty
    without a text."""
    if not options.ppl_text:
        return {}
    progress.info("evaluation: perplexity on the capability text")
    ppl_key = cache.key("ppl", base_id, options.ppl_text, options.max_length, device, models.precision)
    ppl_kw = dict(max_length=options.max_length, batch_size=options.batch_size, device=device)
    cached = cache.get(ppl_key)
    if cached is None or "token_logps" not in cached:
        with models.use("reference") as model:
            cached = {"token_logps": text_logprobs(model, tokenizer, options.ppl_text, **ppl_kw)}
        cache.put(ppl_key, cached)
    reference = cached["token_logps"]
    with models.use("candidate") as model:
        candidate = text_logprobs(model, tokenizer, options.ppl_text, **ppl_kw)
    return {"ppl_reference": math.exp(-sum(reference) / len(reference)),
            "ppl_candidate": math.exp(-sum(candidate) / len(candidate)),
            "ppl_rise_interval": ppl_rise_interval(reference, candidate, n_samples=options.bootstrap_samples,
                                                   seed=options.seed)}


def _report(pairs: list[EvalPair], s: _Scores, beta: float, options: EvalOptions, *, set_hash: str, truncated: int,
            eval_sample_share: float, champion_version: str | None, ppl: dict, generation: dict) -> EvalReport:
    """The report: preference accuracies with paired-bootstrap intervals over prompts, the implicit reward's
    accuracy and margin, the guards and the generation checks."""
    n = len(pairs)
    clusters = [prompt_key(p.prompt) for p in pairs]
    boot = dict(n_samples=options.bootstrap_samples, seed=options.seed)
    ref_wins, cand_wins = s.reference.prefers_chosen(), s.candidate.prefers_chosen()
    champ_wins = s.champion.prefers_chosen() if s.champion else None
    rewards_c = [beta * (c - r) for c, r in zip(s.candidate.logp_chosen, s.reference.logp_chosen, strict=True)]
    rewards_r = [beta * (c - r) for c, r in zip(s.candidate.logp_rejected, s.reference.logp_rejected, strict=True)]
    margins = [c - r for c, r in zip(rewards_c, rewards_r, strict=True)]
    return EvalReport(
        n_pairs=n,
        n_prompts=len(set(clusters)),
        eval_set_hash=set_hash,
        eval_sample_share=eval_sample_share,
        truncated_pairs=truncated,
        max_length=options.max_length,
        pref_accuracy_reference=interval_or_point(ref_wins, clusters, **boot),
        pref_accuracy_candidate=interval_or_point(cand_wins, clusters, **boot),
        delta=paired_delta(cand_wins, ref_wins, clusters, **boot),
        reward_accuracy=sum(m > 0 for m in margins) / n,
        reward_margin=sum(margins) / n,
        beta=beta,
        seconds=0.0,
        reference_cached=s.reference_cached,
        champion_version=champion_version if s.champion is not None else None,
        champion_eval_set_hash=set_hash if s.champion is not None else None,  # scored on these very pairs
        pref_accuracy_champion=interval_or_point(champ_wins, clusters, **boot) if champ_wins else None,
        champion_delta=paired_delta(cand_wins, champ_wins, clusters, **boot) if champ_wins else None,
        **ppl,
        per_pair=_per_pair(pairs, clusters, s, (ref_wins, cand_wins, champ_wins), margins),
        **generation,
    )


def _per_pair(pairs: list[EvalPair], clusters: list[str], s: _Scores, wins: tuple, margins: list[float]) -> list[dict]:
    """One row per held-out pair: the pair, each model's log-likelihoods and preference, the reward margin."""
    rows = []
    for i, p in enumerate(pairs):
        row = {"index": i, "prompt_key": clusters[i], "prompt": p.prompt, "chosen": p.chosen,
               "rejected": p.rejected, "votes": p.votes,
               "n_tokens_chosen": s.candidate.n_chosen[i], "n_tokens_rejected": s.candidate.n_rejected[i]}
        for name, scores, won in zip(("reference", "candidate", "champion"), (s.reference, s.candidate, s.champion),
                                     wins, strict=True):
            if scores is not None:
                row[f"{name}_logp_chosen"] = scores.logp_chosen[i]
                row[f"{name}_logp_rejected"] = scores.logp_rejected[i]
                row[f"{name}_prefers_chosen"] = bool(won[i])
        row["reward_margin"] = margins[i]
        rows.append(row)
    return rows


def _generation_checks(models: ModelSet, tokenizer, pairs: list[EvalPair], options: EvalOptions, device: str,
                       judge: Judge | None, against: str) -> dict:
    """The judge graded on held-out pairs, then the models' own answers on the first held-out prompts
    by hash (answers.generation_checks)."""
    if options.generation_prompts == 0:
        return {}
    prompts, seen = [], set()
    for p in pairs:
        key = prompt_key(p.prompt)
        if key not in seen:
            seen.add(key)
            prompts.append(p.prompt)
        if len(prompts) == options.generation_prompts:
            break
    summary = None
    judge_started = time.perf_counter()
    if judge is not None:
        graded = pairs if options.judge_accuracy_pairs is None else pairs[: options.judge_accuracy_pairs]
        progress.info("evaluation: grading the judge on %d held-out pairs", len(graded))
        summary = grade_judge(judge, graded, min_accuracy=options.judge_min_accuracy,
                              bootstrap_samples=options.bootstrap_samples, seed=options.seed)
    graded_s = time.perf_counter() - judge_started
    out = generation_checks(models, tokenizer, prompts, options, device, judge, against)
    if summary is not None:
        out["judge"] = summary
        out["seconds_parts"]["judge"] = out["seconds_parts"].get("judge", 0.0) + graded_s
    return out


__all__ = ["EvalOptions", "Interval", "evaluate_candidate"]
