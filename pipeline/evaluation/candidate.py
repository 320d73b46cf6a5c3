"""Evaluate a candidate against the reference (its base) and the champion, on one frozen held-out set.

Preference accuracy: the share of held-out pairs where a model's mean per-token log-likelihood of the
chosen answer beats the rejected one, with a 95% interval from a paired bootstrap over prompts.
Implicit reward (DPO's view of the candidate): r(y) = beta * (log pi_candidate(y) - log pi_reference(y));
reward accuracy is the share of pairs with r(chosen) > r(rejected), the margin the mean difference.
Then the models answer some held-out prompts themselves: a judge picks winners, and the candidate's
answers give its length drift and (sampled) its KL from the reference. Perplexity on a fixed text
guards general ability.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alignloop.datasets import EvalPair, eval_set_hash
from alignloop.evaluation.bootstrap import Interval, cluster_bootstrap, paired_delta
from alignloop.evaluation.generation import generate_answers
from alignloop.evaluation.guards import kl_estimate, length_ratio
from alignloop.evaluation.judge import Judge, JudgeSummary, judge_accuracy, win_rates
from alignloop.evaluation.results import EvalReport
from alignloop.evaluation.scoring import (
    ModelSet,
    PairScores,
    ScoreCache,
    encode_pairs,
    model_identity,
    perplexity,
    score_pairs,
    score_sequences,
)
from alignloop.models import load_tokenizer, pick_device
from alignloop.schema import prompt_key

log = logging.getLogger(__name__)
MAX_SAMPLES = 20


@dataclass(frozen=True)
class EvalOptions:
    """The knobs of one evaluation (EvaluationSettings, resolved)."""

    batch_size: int = 8
    max_length: int = 256
    bootstrap_samples: int = 2000
    seed: int = 0
    generation_prompts: int = 8
    max_new_tokens: int = 48
    kl_samples: int = 1
    ppl_text: str | None = None            # None skips the perplexity guard
    cache_dir: Path | None = None          # None: no reference-score cache
    judge_min_accuracy: float = 0.6
    judge_accuracy_pairs: int | None = 200


@dataclass(frozen=True)
class _Scores:
    """Every model's scores of the held-out pairs."""

    candidate: PairScores
    reference: PairScores
    champion: PairScores | None
    reference_cached: bool


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
    encoded = encode_pairs(tokenizer, pairs, options.max_length)  # once, for every model
    models = ModelSet(candidate_dir, base_dir, champion_dir, device)
    cache = ScoreCache(options.cache_dir)
    base_id = model_identity(base_dir)
    scores = _score_models(models, encoded, tokenizer, cache.key("pairs", base_id, set_hash, options.max_length,
                                                                  device), cache, options, device, on_progress)
    generation = _generation_checks(models, tokenizer, pairs, options, device, judge,
                                    against="champion" if champion_dir is not None else "reference")
    ppl_ref, ppl_cand = _perplexities(models, tokenizer, cache, base_id, options, device)
    report = _report(pairs, scores, beta, options, set_hash=set_hash, truncated=encoded.truncated,
                     eval_sample_share=eval_sample_share, champion_version=champion_version,
                     ppl=(ppl_ref, ppl_cand), generation=generation)
    report = _with_seconds(report, time.perf_counter() - started)
    log.info("evaluation: %s", report.metrics())
    return report


def _score_models(models: ModelSet, encoded, tokenizer, ref_key: str, cache: ScoreCache, options: EvalOptions,
                  device: str, on_progress: Callable[[int, int], None] | None) -> _Scores:
    """Score every pair with the candidate, the reference (unless its scores are cached) and the champion;
    on_progress counts the answers scored."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    reference = cache.get_pair_scores(ref_key)
    reference_cached = reference is not None
    total = len(encoded.sequences) * (1 + (not reference_cached) + (models.champion_dir is not None))
    done = 0

    def advance(k: int) -> None:
        nonlocal done
        done += k
        if on_progress:
            on_progress(done, total)

    kw = dict(pad_id=pad_id, batch_size=options.batch_size, device=device, on_batch=advance)
    with models.use("candidate") as model:
        candidate = score_pairs(model, encoded, **kw)
    if reference is None:
        with models.use("reference") as model:
            reference = score_pairs(model, encoded, **kw)
        cache.put_pair_scores(ref_key, reference)
    champion: PairScores | None = None
    if models.champion_dir is not None:
        with models.use("champion") as model:
            champion = score_pairs(model, encoded, **kw)
    return _Scores(candidate, reference, champion, reference_cached)


def _perplexities(models: ModelSet, tokenizer, cache: ScoreCache, base_id: str, options: EvalOptions,
                  device: str) -> tuple[float | None, float | None]:
    """(reference, candidate) perplexity on the capability text (the reference's cached), or Nones without one."""
    if not options.ppl_text:
        return None, None
    ppl_key = cache.key("ppl", base_id, options.ppl_text, options.max_length, device)
    ppl_kw = dict(max_length=options.max_length, batch_size=options.batch_size, device=device)
    cached = cache.get(ppl_key)
    if cached is None:
        with models.use("reference") as model:
            cached = {"ppl": perplexity(model, tokenizer, options.ppl_text, **ppl_kw)}
        cache.put(ppl_key, cached)
    with models.use("candidate") as model:
        return cached["ppl"], perplexity(model, tokenizer, options.ppl_text, **ppl_kw)


def _report(pairs: list[EvalPair], s: _Scores, beta: float, options: EvalOptions, *, set_hash: str, truncated: int,
            eval_sample_share: float, champion_version: str | None, ppl: tuple[float | None, float | None],
            generation: dict) -> EvalReport:
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
        pref_accuracy_reference=cluster_bootstrap(ref_wins, clusters, **boot),
        pref_accuracy_candidate=cluster_bootstrap(cand_wins, clusters, **boot),
        delta=paired_delta(cand_wins, ref_wins, clusters, **boot),
        reward_accuracy=sum(m > 0 for m in margins) / n,
        reward_margin=sum(margins) / n,
        beta=beta,
        seconds=0.0,
        reference_cached=s.reference_cached,
        champion_version=champion_version if s.champion is not None else None,
        pref_accuracy_champion=cluster_bootstrap(champ_wins, clusters, **boot) if champ_wins else None,
        champion_delta=paired_delta(cand_wins, champ_wins, clusters, **boot) if champ_wins else None,
        ppl_reference=ppl[0],
        ppl_candidate=ppl[1],
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


def _with_seconds(report: EvalReport, seconds: float) -> EvalReport:
    from dataclasses import replace

    return replace(report, seconds=seconds)


def _generation_checks(models: ModelSet, tokenizer, pairs: list[EvalPair], options: EvalOptions, device: str,
                       judge: Judge | None, against: str) -> dict:
    """Samples side by side, judged win rate, length drift and KL, on the first held-out prompts by hash."""
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
    gen = dict(max_new_tokens=options.max_new_tokens, batch_size=options.batch_size, device=device,
               max_prompt_tokens=options.max_length)
    answers = {}
    for name in ("candidate", "reference") + (("champion",) if against == "champion" else ()):
        with models.use(name) as model:
            answers[name] = generate_answers(model, tokenizer, prompts, **gen)
    out: dict = {
        "length_ratio": length_ratio(answers["candidate"].mean_tokens(), answers["reference"].mean_tokens()),
        "samples": [{"prompt": p[-1]["content"], "conversation": p, "candidate": c, against: o}
                    for p, c, o in zip(prompts, answers["candidate"].texts, answers[against].texts, strict=True)
                    ][:MAX_SAMPLES],
        "win_rate_against": against,
    }
    if options.kl_samples:
        kl_prompts = [p for p in prompts for _ in range(options.kl_samples)]
        with models.use("candidate") as model:
            sampled = generate_answers(model, tokenizer, kl_prompts, sample=True, seed=options.seed, **gen)
            scored = sampled.as_scored()
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            logp_c, _ = score_sequences(model, scored, pad_id=pad, batch_size=options.batch_size, device=device)
        with models.use("reference") as model:
            logp_r, _ = score_sequences(model, scored, pad_id=pad, batch_size=options.batch_size, device=device)
        out["kl_reference"] = kl_estimate(logp_c, logp_r)
    if judge is not None:
        graded = pairs if options.judge_accuracy_pairs is None else pairs[: options.judge_accuracy_pairs]
        accuracy = judge_accuracy(judge, graded)
        wins = win_rates(judge, prompts, answers["candidate"].texts, answers[against].texts)
        out["judge"] = JudgeSummary(judge.kind, accuracy >= options.judge_min_accuracy, accuracy, len(graded))
        out["win_rate"] = cluster_bootstrap(wins, [prompt_key(p) for p in prompts],
                                            n_samples=options.bootstrap_samples, seed=options.seed)
    return out


__all__ = ["EvalOptions", "Interval", "evaluate_candidate"]
