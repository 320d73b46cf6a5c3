"""The models' own answers on held-out prompts, measured: judged win rate, length drift, degenerate and
refusing answers, KL from the reference, the judged win rate of sampled answers (temperature 1) beside
the greedy one, each with a 95% interval over prompts, and the side-by-side samples the review page shows.

Preference accuracy says which of two given answers a model ranks higher; it can rise while the
model's own answers get worse (a learned cue, chattier text). These checks read what it writes.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from alignloop.evaluation.bootstrap import interval_or_point, paired_delta
from alignloop.schema import prompt_key

if TYPE_CHECKING:
    from alignloop.evaluation.generation import Generated
    from alignloop.evaluation.judge import Judge

progress = logging.getLogger("alignloop.evaluation.progress")

EMPTY, REPEATING, CUT_OFF = "empty", "repeating", "cut off"
# The reference samples its answers with the evaluation's seed plus this: its draws are independent of the
# candidate's, so a sampled win rate compares two independent answers, as the greedy one compares two models.
REFERENCE_SEED_OFFSET = 1
_REFUSAL = re.compile(
    r"\b(I can(?:no|')t (?:help|assist|answer|do that|provide)|I(?: a|')m (?:sorry|unable|not able)|I am unable|"
    r"as an AI\b|I won(?:')t be able)", re.IGNORECASE)


# evaluation.max_new_tokens left unset: the answers may run as long as this share of the held-out pairs'
# preferred answers do (then the end token), rounded up, within these bounds. A fixed 48 tokens cut off more than
# half of real preferred answers (a median near 75 tokens on real helpfulness transcripts), so "cut off" said
# "longer than 48 tokens", not "never ends", and loops that start later went unseen.
ANSWER_LIMIT_QUANTILE, ANSWER_LIMIT_ROUND, ANSWER_LIMIT_BOUNDS = 0.95, 16, (32, 256)


def answer_token_limit(tokenizer, answers: Sequence[str]) -> int:
    """The generation limit drawn from the preferred answers' lengths in tokens: their 95th percentile plus the
    end token, rounded up to 16, between 32 and 256 (the lower bound where there are no answers)."""
    low, high = ANSWER_LIMIT_BOUNDS
    if not answers:
        return low
    lengths = sorted(len(ids) for ids in tokenizer(list(answers), add_special_tokens=False)["input_ids"])
    at = lengths[min(len(lengths) - 1, math.ceil(ANSWER_LIMIT_QUANTILE * len(lengths)) - 1)] + 1
    return min(high, max(low, -(-at // ANSWER_LIMIT_ROUND) * ANSWER_LIMIT_ROUND))


def degenerate_kind(text: str, stopped: bool) -> str | None:
    """Why an answer is degenerate: empty, repeating itself (a few word or character n-grams over and
    over), or cut off at the token limit before the model ended it; None for an ordinary answer."""
    stripped = text.strip()
    if not stripped:
        return EMPTY
    words = stripped.split()
    grams = [tuple(words[i: i + 3]) for i in range(len(words) - 2)]
    if len(grams) >= 6 and len(set(grams)) / len(grams) < 0.5:
        return REPEATING
    chars = [stripped[i: i + 4] for i in range(len(stripped) - 3)]
    if len(chars) >= 24 and len(set(chars)) / len(chars) < 0.3:
        return REPEATING
    return None if stopped else CUT_OFF


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL.search(text))


def generation_checks(models, tokenizer, prompts: Sequence[list[dict[str, str]]], options, device: str,
                      judge: Judge | None, against: str) -> dict[str, Any]:
    """Every model answers `prompts` (greedy); the candidate also samples answers for the KL estimate, and
    with a judge the reference samples as many, for the win rate on sampled answers. Returns EvalReport
    fields: intervals, rates, counts, samples, and the seconds each part took."""
    from alignloop.evaluation.generation import generate_answers

    gen = dict(max_new_tokens=options.max_new_tokens, batch_size=options.batch_size, device=device,
               max_prompt_tokens=options.max_length)
    boot = dict(n_samples=options.bootstrap_samples, seed=options.seed)
    started = time.perf_counter()
    answers: dict[str, Generated] = {}
    for name in ("candidate", "reference") + (("champion",) if against == "champion" else ()):
        progress.info("evaluation: %s answering %d held-out prompts", name, len(prompts))
        with models.use(name, generating=True) as model:
            answers[name] = generate_answers(model, tokenizer, prompts, **gen)
    kinds = {name: [degenerate_kind(t, s) for t, s in zip(g.texts, g.stopped, strict=True)]
             for name, g in answers.items()}
    out = {**_greedy_checks(prompts, answers, kinds, boot), "win_rate_against": against}
    seconds = {"generation": time.perf_counter() - started}
    sampled: dict[str, Generated] = {}
    if options.kl_samples:
        out.update(_sampled(models, tokenizer, prompts, options, gen, boot, judge is not None, sampled, seconds))
    verdicts: dict[str, list[float]] = {}
    if judge is not None:
        started = time.perf_counter()
        out.update(_judged(judge, prompts, answers, against, options, boot, verdicts))
        seconds["judge"] = time.perf_counter() - started
    if judge is not None and "reference" in sampled:
        started = time.perf_counter()
        out.update(_judged_sampled(judge, prompts, sampled, options.kl_samples, boot))
        seconds["judge_sampled"] = time.perf_counter() - started
    out["samples"] = _samples(prompts, answers, kinds, verdicts)
    out["seconds_parts"] = seconds
    return out


def _greedy_checks(prompts, answers: dict[str, Generated], kinds: dict[str, list[str | None]],
                   boot: dict) -> dict[str, Any]:
    """Length drift, degenerate and refusing answers of the greedy answers, candidate against reference."""
    clusters = [prompt_key(p) for p in prompts]
    flags = {name: [float(k is not None) for k in ks] for name, ks in kinds.items()}
    cand, ref = answers["candidate"], answers["reference"]
    lengths_r = [max(len(a), 1) for a in ref.answer_ids]
    return {
        "generation_prompts": len(prompts),
        "length_ratio": interval_or_point([len(c) / r for c, r in zip(cand.answer_ids, lengths_r, strict=True)],
                                          clusters, weights=lengths_r, **boot),
        "degenerate_rate": sum(flags["candidate"]) / len(prompts),
        "degenerate_rate_reference": sum(flags["reference"]) / len(prompts),
        "degenerate_delta": paired_delta(flags["candidate"], flags["reference"], clusters, **boot),
        "refusal_rate": sum(map(is_refusal, cand.texts)) / len(prompts),
        "refusal_rate_reference": sum(map(is_refusal, ref.texts)) / len(prompts),
    }


def sampled_prompts(prompts, per_prompt: int) -> list[list[dict[str, str]]]:
    """Each prompt `per_prompt` times in a row: the prompts sampled answers answer, in order."""
    return [p for p in prompts for _ in range(per_prompt)]


def _sampled(models, tokenizer, prompts, options, gen: dict, boot: dict, for_judge: bool,
             sampled: dict[str, Generated], seconds: dict[str, float]) -> dict[str, Any]:
    """The candidate's sampled answers and the KL estimate from them; with a judge, the reference's sampled
    answers to the same prompts too (generated once per prompt set, then read from the cache). `sampled`
    receives the answers, `seconds` the time each part took."""
    from alignloop.evaluation.generation import generate_answers

    started = time.perf_counter()
    asked = sampled_prompts(prompts, options.kl_samples)
    progress.info("evaluation: candidate sampling %d answers (KL estimate%s)", len(asked),
                  ", sampled win rate" if for_judge else "")
    with models.use("candidate", generating=True) as model:
        sampled["candidate"] = generate_answers(model, tokenizer, asked, sample=True, seed=options.seed, **gen)
    out = _kl(models, tokenizer, asked, sampled["candidate"], options, gen, boot)
    seconds["kl"] = time.perf_counter() - started
    if for_judge:
        started = time.perf_counter()
        sampled["reference"], out["reference_samples_cached"] = reference_samples(models, tokenizer, asked,
                                                                                  options, gen)
        seconds["reference_sampling"] = time.perf_counter() - started
    return out


def reference_samples(models, tokenizer, asked, options, gen: dict) -> tuple[Generated, bool]:
    """The reference's sampled answers to `asked` (seed + REFERENCE_SEED_OFFSET: independent of the
    candidate's draws), and whether they came from the cache: they depend only on the base model, the
    prompts and the generation settings, so one prompt set samples them once."""
    from dataclasses import asdict

    from alignloop.evaluation.generation import Generated, generate_answers
    from alignloop.evaluation.scoring import ScoreCache, model_identity

    seed = options.seed + REFERENCE_SEED_OFFSET
    cache = ScoreCache(options.cache_dir)
    key = cache.key("sampled_answers", model_identity(models.base_dir), asked, seed, gen, models.generation_precision)
    found = cache.get(key)
    if found is not None:
        progress.info("evaluation: the reference's %d sampled answers read from the cache", len(asked))
        return Generated(**found), True
    progress.info("evaluation: reference sampling %d answers for the sampled win rate", len(asked))
    with models.use("reference", generating=True) as model:
        answers = generate_answers(model, tokenizer, asked, sample=True, seed=seed, **gen)
    cache.put(key, asdict(answers))
    return answers, False


def _kl(models, tokenizer, asked, sampled: Generated, options, gen: dict, boot: dict) -> dict[str, Any]:
    """KL(candidate ‖ reference) in nats per answer from answers sampled from the candidate, with an
    interval over prompts (a prompt's samples resampled together)."""
    from alignloop.evaluation.scoring import _pad_id, score_sequences

    pad = _pad_id(tokenizer)
    scored = sampled.as_scored()
    with models.use("candidate") as model:
        logp_c, _ = score_sequences(model, scored, pad_id=pad, batch_size=options.batch_size, device=gen["device"])
    with models.use("reference") as model:
        logp_r, _ = score_sequences(model, scored, pad_id=pad, batch_size=options.batch_size, device=gen["device"])
    diffs = [c - r for c, r in zip(logp_c, logp_r, strict=True)]
    return {"kl_reference": interval_or_point(diffs, [prompt_key(p) for p in asked], **boot),
            "kl_prompts": len(asked) // max(options.kl_samples, 1)}


def _judged(judge: Judge, prompts, answers: dict[str, Generated], against: str, options, boot: dict,
            verdicts: dict[str, list[float]]) -> dict[str, Any]:
    """The candidate's answers judged against the champion's (or the reference's), and against the
    reference's too when there is a champion; `verdicts` receives the per-prompt outcomes."""
    from alignloop.evaluation.judge import win_rates

    clusters = [prompt_key(p) for p in prompts]
    progress.info("evaluation: judging the candidate's answers against the %s's on %d prompts", against, len(prompts))
    verdicts[against] = win_rates(judge, prompts, answers["candidate"].texts, answers[against].texts)
    out: dict[str, Any] = {"win_rate": interval_or_point(verdicts[against], clusters, **boot),
                           "judge_prompts": len(prompts)}
    if against != "reference":
        verdicts["reference"] = win_rates(judge, prompts, answers["candidate"].texts, answers["reference"].texts)
        out["win_rate_reference"] = interval_or_point(verdicts["reference"], clusters, **boot)
    return out


def _judged_sampled(judge: Judge, prompts, sampled: dict[str, Generated], per_prompt: int,
                    boot: dict) -> dict[str, Any]:
    """The candidate's sampled answers judged against the reference's to the same prompts (the i-th draw
    against the i-th), with an interval over prompts (a prompt's draws resampled together)."""
    from alignloop.evaluation.judge import win_rates

    asked = sampled_prompts(prompts, per_prompt)
    progress.info("evaluation: judging the candidate's %d sampled answers against the reference's", len(asked))
    verdicts = win_rates(judge, asked, sampled["candidate"].texts, sampled["reference"].texts)
    return {"sampled_win_rate": interval_or_point(verdicts, [prompt_key(p) for p in asked], **boot),
            "sampled_prompts": len(prompts), "sampled_per_prompt": per_prompt}


def _samples(prompts, answers: dict[str, Generated], kinds: dict[str, list[str | None]],
             verdicts: dict[str, list[float]]) -> list[dict[str, Any]]:
    """Every answered prompt side by side: the whole conversation, each model's answer, its degenerate
    kind (None when ordinary), and the judge's verdicts for the candidate."""
    out = []
    for i, p in enumerate(prompts):
        row: dict[str, Any] = {"prompt": p[-1]["content"], "conversation": p}
        for name, g in answers.items():
            row[name] = g.texts[i]
            row[f"{name}_degenerate"] = kinds[name][i]
        for other, v in verdicts.items():
            row[f"judged_vs_{other}"] = v[i]
        out.append(row)
    return out
