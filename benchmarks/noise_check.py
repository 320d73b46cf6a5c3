"""`alignloop bench noise`: how far the flip-rate estimates can be trusted.

Three checks. On synthetic pairs with a hidden word rule and flips injected at known rates (no
comparison repeated), the reward-model estimate against the share actually flipped; the same for
thumbs (the estimate one answer at a time). On real human
votes (QA-Feedback: four answers a question, all six pairs judged), the flip rate the votes' own
agreement implies (intransitive triads) against the reward-model estimate of the same pairs.
"""

from __future__ import annotations

import json
import random
import time
from datetime import datetime
from pathlib import Path
from typing import Any

CALIBRATION = ((2000, (0.0, 0.05, 0.10, 0.15, 0.25, 0.40)), (400, (0.10, 0.25)))


def noise_calibration(seeds: tuple[int, ...] = (1, 2)) -> list[dict[str, Any]]:
    """The reward-model flip-rate estimate on synthetic pairs with known flips (no comparison repeated)."""
    from alignloop.benchmarks.regimes import synthetic_pairs
    from alignloop.config import PlanningSettings
    from alignloop.profile.reward_model import estimate_from_table

    threshold = PlanningSettings().noise_threshold
    rows = []
    for n, rates in CALIBRATION:
        for rate in rates:
            for seed in seeds:
                pairs, flipped = synthetic_pairs(n, rate, seed)
                started = time.perf_counter()
                est = estimate_from_table(pairs)
                truth = flipped / n
                rows.append({"pairs": n, "injected": rate, "true_share": round(truth, 4), "seed": seed,
                             "estimate": est.flip_rate, "low": est.low, "high": est.high, "acted_on": est.enough,
                             "verdict": verdict(est, threshold),
                             "covered": est.flip_rate is not None and est.low <= truth <= est.high,
                             "detail": est.detail, "seconds": round(time.perf_counter() - started, 1)})
    return rows


# (thumbs, answers a prompt, share up, injected rates): the thumbs' own estimate, one answer at a time.
THUMBS_CALIBRATION = ((3000, 2, 0.5, (0.0, 0.10, 0.25, 0.35)), (3000, 4, 0.2, (0.0, 0.10, 0.25, 0.35)),
                      (600, 2, 0.5, (0.10, 0.30)))


def thumbs_calibration(seeds: tuple[int, ...] = (1, 2)) -> list[dict[str, Any]]:
    """The reward-model flip-rate estimate on synthetic thumbs with known flips (no answer thumbed twice);
    verdicts against planning.kto_noise_threshold, the threshold the planner reads thumbs' noise by."""
    from alignloop.benchmarks.regimes import flipped_thumbs
    from alignloop.config import PlanningSettings
    from alignloop.profile.reward_model import estimate_from_thumbs_table

    threshold = PlanningSettings().kto_noise_threshold
    rows = []
    for n, per_prompt, up_share, rates in THUMBS_CALIBRATION:
        for rate in rates:
            for seed in seeds:
                thumbs, truth = flipped_thumbs(n // per_prompt, per_prompt, up_share, seed, rate)
                started = time.perf_counter()
                est = estimate_from_thumbs_table(thumbs)
                rows.append({"thumbs": n, "answers_per_prompt": per_prompt, "up_share": up_share, "injected": rate,
                             "true_share": round(truth, 4), "seed": seed, "estimate": est.flip_rate, "low": est.low,
                             "high": est.high, "acted_on": est.enough, "verdict": verdict(est, threshold),
                             "covered": est.flip_rate is not None and est.low <= truth <= est.high,
                             "detail": est.detail, "seconds": round(time.perf_counter() - started, 1)})
    return rows


def verdict(est, threshold: float) -> str:
    """What the planner makes of an estimate: noisy (whole interval at or above the threshold), clean (below
    it), too wide (the interval holds the threshold), or too little evidence."""
    if est.flip_rate is None or not est.enough:
        return "too little evidence"
    return "noisy" if est.low >= threshold else "clean" if est.high < threshold else "too wide"


# ------------------------------------------------------------------------------------------ real votes
# QA-Feedback's six votes a question, in this order of its four answers (1: first better, 2: second, 0: tie).
QA_VOTE_ORDER = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
INJECTED = (0.0, 0.10, 0.25, 0.40)
T0 = datetime(2026, 10, 1)
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def read_qa_feedback(path: Path) -> list[dict[str, Any]]:
    """Each question's text, four answers and six votes [(i, j, winner index or None for a tie)]."""
    try:
        data = json.loads(path.read_text())
        out = []
        for q in data:
            answers = [q[f"prediction {k}"] for k in range(1, 5)]
            if len(q["preference"]) != len(QA_VOTE_ORDER):
                raise ValueError(f"{len(q['preference'])} preferences, not 6")
            votes = [(i, j, {1: i, 2: j, 0: None}[int(p)]) for (i, j), p in zip(QA_VOTE_ORDER, q["preference"],
                                                                                strict=True)]
            out.append({"question": q["question"], "answers": answers, "votes": votes})
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not QA-Feedback's dev_feedback.json ({e}); pass --data with the folder holding "
                         "qa-feedback/dev_feedback.json") from e
    return out


def _pairs(questions: list[dict[str, Any]], flip_rate: float, seed: int):
    """Canonical pairs of the decisive votes (ties dropped), a share flip_rate of them turned at random.
    Returns (table, how many were turned)."""
    import pyarrow as pa

    from alignloop.schema import PAIRS_SCHEMA

    rng = random.Random(seed)
    rows, turned = [], 0
    for n, q in enumerate(questions):
        for i, j, winner in q["votes"]:
            if winner is None:
                continue
            chosen, rejected = (i, j) if winner == i else (j, i)
            if flip_rate and rng.random() < flip_rate:
                chosen, rejected = rejected, chosen
                turned += 1
            rows.append({"event_id": f"qa{n}-{i}{j}", "source": "qa-feedback", "ts": T0, "user_id": None,
                         "model_version": "v", "prompt": [{"role": "user", "content": q["question"]}],
                         "chosen": q["answers"][chosen], "rejected": q["answers"][rejected]})
    return pa.Table.from_pylist(rows, schema=PAIRS_SCHEMA), turned


def _estimate(est) -> dict[str, Any]:
    from alignloop.config import PlanningSettings

    return {"flip_rate": est.flip_rate, "low": est.low, "high": est.high, "support": est.support, "unit": est.unit,
            "verdict": verdict(est, PlanningSettings().noise_threshold), "detail": est.detail}


def real_votes_check(data_dir: Path = DEFAULT_DATA, injected: tuple[float, ...] = INJECTED, seed: int = 0,
                     without_votes: bool = True) -> dict[str, Any]:
    """On QA-Feedback's real votes, with flips injected at known rates on top: what the votes' own agreement
    (intransitive triads) implies, what the reward model estimates from the answers' words, and which
    signal the data profile rests on; then (without_votes) the reward model on HH-RLHF's pairs."""
    from alignloop.benchmarks.regimes import empty_thumbs
    from alignloop.profile import measure_profile
    from alignloop.profile.reward_model import estimate_from_table

    questions = read_qa_feedback(data_dir / "qa-feedback" / "dev_feedback.json")
    votes = [v for q in questions for v in q["votes"]]
    rows = []
    for rate in injected:
        pairs, turned = _pairs(questions, rate, seed)
        shape = measure_profile(empty_thumbs(), pairs, holdout_fraction=0.0, model_noise=False)
        triads = next(s for s in shape.noise_signals if s.signal == "intransitive_triads")
        rows.append({"injected": rate, "true_share": turned / pairs.num_rows, "pairs": pairs.num_rows,
                     "triads": _estimate(triads), "reward_model": _estimate(estimate_from_table(pairs)),
                     "profile_rests_on": None if shape.pair_noise is None else shape.pair_noise.signal})
    return {"questions": len(questions), "votes": len(votes), "ties": sum(w is None for _, _, w in votes),
            "first_answer_preferred": sum(w == i for i, _, w in votes if w is not None), "seed": seed, "rows": rows,
            "reward_model_without_votes": hh_reward_model(data_dir) if without_votes else []}


def hh_reward_model(data_dir: Path) -> list[dict[str, Any]]:
    """The reward-model estimate on HH-RLHF's helpfulness pairs (one vote a pair: nothing to check it against)."""
    import gzip

    from alignloop.profile.reward_model import estimate_from_pairs

    out = []
    for path in sorted((data_dir / "hh-helpful").glob("*.jsonl.gz")):
        prompts, chosen, rejected = [], [], []
        with gzip.open(path, "rt") as f:
            for line in f:
                row = json.loads(line)
                c, r = row["chosen"], row["rejected"]
                common = next((k for k, (x, y) in enumerate(zip(c, r, strict=False)) if x != y), min(len(c), len(r)))
                cut = c.rfind("\n\nAssistant:", 0, common + 1)
                prompts.append(c[:cut])
                chosen.append(c[cut:])
                rejected.append(r[cut:])
        out.append({"set": path.name.removesuffix(".jsonl.gz"), "pairs": len(chosen),
                    **_estimate(estimate_from_pairs(prompts, chosen, rejected))})
    return out
