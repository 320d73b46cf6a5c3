"""Synthetic feedback with a known ground truth: a hidden rule decides which answer is better.

An answer is a short string of words; each word carries a hidden weight (kind words positive, rude
words negative, filler zero) and an answer's true quality is the sum. The better of two answers is
the one with the higher quality, so every pair has a right label and a flipped label can be
injected at a known rate; thumbs go up for the answers above a quality cut chosen to give a known
up:down ratio. The noise estimator is calibrated here and `alignloop bench methods` trains on these.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pyarrow as pa

from alignloop.schema import PAIRS_SCHEMA, UNPAIRED_SCHEMA

# Words the tiny model's tokenizer knows whole (they are in its corpus), so the rule is learnable by it.
GOOD_WORDS = ("thank", "please", "help", "glad", "happy", "welcome", "kind", "sure")
BAD_WORDS = ("ugh", "whatever", "stupid", "annoying", "boring", "idiot", "away", "obvious")
FILLER_WORDS = ("the", "answer", "is", "simple", "water", "rice", "sun", "sea", "book", "city",
                "day", "week", "number", "question", "text", "story")
TOPICS = ("cooking", "travel", "numbers", "books", "weather", "cities", "music", "science", "sport", "history")
T0 = datetime(2026, 10, 1)


def quality(answer: str) -> int:
    """The hidden rule: kind words count +1, rude words -1, everything else 0."""
    words = answer.split()
    return sum(w in GOOD_WORDS for w in words) - sum(w in BAD_WORDS for w in words)


def _answer(rng: random.Random) -> str:
    n = rng.randint(5, 8)
    kind = rng.choice((0, 0, 1, 1, 2, 3))
    rude = rng.choice((0, 0, 1, 1, 2, 3))
    words = ([rng.choice(GOOD_WORDS) for _ in range(kind)] + [rng.choice(BAD_WORDS) for _ in range(rude)]
             + [rng.choice(FILLER_WORDS) for _ in range(max(n - kind - rude, 2))])
    rng.shuffle(words)
    return " ".join(words)


def _prompt(i: int, tag: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"question {tag}{i} about {TOPICS[i % len(TOPICS)]}"}]


def _row(i: int, prompt: list[dict[str, str]], user: str | None) -> dict:
    return {"event_id": f"e{i}", "source": "synthetic", "ts": T0 + timedelta(seconds=i), "user_id": user,
            "model_version": "v1", "prompt": prompt}


def synthetic_pairs(n: int, flip_rate: float, seed: int, tag: str = "p") -> tuple[pa.Table, int]:
    """n pairs on n distinct prompts (no comparison repeated), each answer pair of different quality;
    a share `flip_rate` of labels swapped at random. Returns the table and how many were flipped."""
    rng = random.Random(seed)
    rows, flipped = [], 0
    for i in range(n):
        a, b = _answer(rng), _answer(rng)
        while quality(a) == quality(b) or a == b:
            b = _answer(rng)
        good, bad = (a, b) if quality(a) > quality(b) else (b, a)
        if rng.random() < flip_rate:
            good, bad = bad, good
            flipped += 1
        rows.append({**_row(i, _prompt(i, tag), f"u{rng.randrange(50)}"), "chosen": good, "rejected": bad})
    return pa.Table.from_pylist(rows, schema=PAIRS_SCHEMA), flipped


def synthetic_thumbs(n_prompts: int, answers_per_prompt: int, up_share: float, seed: int,
                     tag: str = "t") -> pa.Table:
    """answers_per_prompt answers to each of n_prompts prompts; the best `up_share` of all answers
    (by the hidden rule, ties broken at random) get a thumb up, the rest a thumb down."""
    rng = random.Random(seed)
    answers = []
    for i in range(n_prompts):
        prompt = _prompt(i, tag)
        seen: set[str] = set()
        while len(seen) < answers_per_prompt:
            seen.add(_answer(rng))
        answers += [(prompt, a) for a in sorted(seen)]
    order = sorted(range(len(answers)), key=lambda j: (quality(answers[j][1]), rng.random()), reverse=True)
    n_up = round(up_share * len(answers))
    up = set(order[:n_up])
    rows = [{**_row(j, p, f"u{rng.randrange(50)}"), "completion": a, "label": j in up}
            for j, (p, a) in enumerate(answers)]
    return pa.Table.from_pylist(rows, schema=UNPAIRED_SCHEMA)


def empty_pairs() -> pa.Table:
    return PAIRS_SCHEMA.empty_table()


def empty_thumbs() -> pa.Table:
    return UNPAIRED_SCHEMA.empty_table()


@dataclass(frozen=True)
class Regime:
    """One kind of feedback: what was collected, and how noisy."""

    name: str
    n_pairs: int = 0
    flip_rate: float = 0.0
    n_thumb_prompts: int = 0
    up_share: float = 0.5
    answers_per_prompt: int = 4
    notes: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    def build(self, seed: int) -> tuple[pa.Table, pa.Table]:
        """(unpaired, pairs) canonical tables for this regime."""
        pairs = synthetic_pairs(self.n_pairs, self.flip_rate, seed, tag=f"{self.name}-p")[0] if self.n_pairs \
            else empty_pairs()
        thumbs = synthetic_thumbs(self.n_thumb_prompts, self.answers_per_prompt, self.up_share, seed + 1_000,
                                  tag=f"{self.name}-t") if self.n_thumb_prompts else empty_thumbs()
        return thumbs, pairs


def heldout_pairs(n: int, seed: int) -> list[tuple[list[dict[str, str]], str, str]]:
    """Ground-truth (prompt, better, worse) pairs on prompts no regime trains on."""
    table, _ = synthetic_pairs(n, 0.0, seed + 99_991, tag="heldout")
    return [(r["prompt"], r["chosen"], r["rejected"]) for r in table.to_pylist()]
