"""Turn a snapshot into what the trainers and the evaluation read.

The split is by prompt hash, so a prompt is either trained on or held out, never both, and stays on
its side across runs. Training rows use TRL's conversational formats as they are; held-out rows are
collapsed to one majority-voted pair per distinct (prompt, answer, answer), so one noisy vote does
not decide a metric.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from datasets import Dataset

from pipeline.schema import is_holdout, prompt_key


@dataclass(frozen=True)
class Split:
    train_unpaired: list[dict[str, Any]]
    train_pairs: list[dict[str, Any]]
    holdout_unpaired: list[dict[str, Any]]
    holdout_pairs: list[dict[str, Any]]


@dataclass(frozen=True)
class EvalPair:
    prompt: list[dict[str, str]]
    chosen: str
    rejected: str
    votes: int           # judgements behind this pair (majority side)


def split_snapshot(unpaired: pa.Table, pairs: pa.Table, holdout_fraction: float,
                   max_train_examples: int | None = None) -> Split:
    """Split canonical rows into train and holdout by prompt hash; keep the newest training rows."""
    def part(table: pa.Table) -> tuple[list[dict], list[dict]]:
        train, holdout = [], []
        for row in table.to_pylist():
            (holdout if is_holdout(row["prompt"], holdout_fraction) else train).append(row)
        if max_train_examples is not None:
            train = train[-max_train_examples:]  # rows come oldest first
        return train, holdout

    tu, hu = part(unpaired)
    tp, hp = part(pairs)
    return Split(tu, tp, hu, hp)


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def preference_dataset(rows: list[dict[str, Any]]) -> Dataset:
    """TRL's conversational preference format: prompt (messages), chosen, rejected (assistant turns)."""
    return Dataset.from_list(
        [{"prompt": r["prompt"], "chosen": _assistant(r["chosen"]), "rejected": _assistant(r["rejected"])}
         for r in rows]
    )


def unpaired_dataset(unpaired_rows: list[dict[str, Any]], pair_rows: list[dict[str, Any]], seed: int) -> Dataset:
    """TRL's conversational unpaired format (prompt, completion, label), shuffled.

    Thumbs rows are used when there are any; otherwise each pair becomes one desirable and one
    undesirable row. KTO's sampler never shuffles, so the order is randomised here.
    """
    if unpaired_rows:
        rows = [{"prompt": r["prompt"], "completion": _assistant(r["completion"]), "label": bool(r["label"])}
                for r in unpaired_rows]
    else:
        rows = [row for r in pair_rows for row in (
            {"prompt": r["prompt"], "completion": _assistant(r["chosen"]), "label": True},
            {"prompt": r["prompt"], "completion": _assistant(r["rejected"]), "label": False},
        )]
    random.Random(seed).shuffle(rows)
    return Dataset.from_list(rows)


def prompt_dataset(rows: list[dict[str, Any]]) -> Dataset:
    """Distinct training prompts, for online RL: the policy writes the answers itself."""
    seen: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        seen.setdefault(prompt_key(r["prompt"]), r["prompt"])
    return Dataset.from_list([{"prompt": p} for _, p in sorted(seen.items())])


def holdout_eval_pairs(split: Split, max_examples: int) -> list[EvalPair]:
    """Distinct held-out preference pairs, each labelled by majority vote (ties dropped).

    From comparisons directly, and from thumbs: an answer's label is its majority thumb; every
    up-answer to a prompt is paired with every down-answer to the same prompt. Capped at
    max_examples, chosen by hash so the set is stable as data grows.
    """
    votes: dict[tuple[str, str, str], list[int]] = {}
    prompts: dict[str, list[dict[str, str]]] = {}

    def vote(prompt: list[dict[str, str]], winner: str, loser: str, weight: int = 1) -> None:
        key = prompt_key(prompt)
        prompts[key] = prompt
        a, b = sorted((winner, loser))
        tally = votes.setdefault((key, a, b), [0, 0])
        tally[0 if winner == a else 1] += weight

    for r in split.holdout_pairs:
        vote(r["prompt"], r["chosen"], r["rejected"])

    thumbs: dict[tuple[str, str], list[int]] = {}
    for r in split.holdout_unpaired:
        key = prompt_key(r["prompt"])
        prompts[key] = r["prompt"]
        thumbs.setdefault((key, r["completion"]), [0, 0])[0 if r["label"] else 1] += 1
    by_prompt: dict[str, tuple[list[str], list[str]]] = {}
    for (key, completion), (up, down) in thumbs.items():
        if up != down:
            by_prompt.setdefault(key, ([], []))[0 if up > down else 1].append(completion)
    for key, (good, bad) in by_prompt.items():
        for g in good:
            for b in bad:
                vote(prompts[key], g, b)

    out = []
    for (key, a, b), (for_a, for_b) in votes.items():
        if for_a == for_b:
            continue
        chosen, rejected = (a, b) if for_a > for_b else (b, a)
        out.append(EvalPair(prompts[key], chosen, rejected, max(for_a, for_b)))
    out.sort(key=lambda p: hashlib.sha256(json.dumps([p.prompt, p.chosen, p.rejected]).encode()).hexdigest())
    return out[:max_examples]


def eval_set_hash(pairs: list[EvalPair]) -> str:
    """Identifies the held-out set, so two models' metrics are only compared on the same set."""
    canonical = json.dumps([[p.prompt, p.chosen, p.rejected] for p in pairs], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
