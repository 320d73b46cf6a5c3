"""Synthetic feedback with a known ground truth: a hidden rule decides which answer is better.

An answer is a short string of words; each word carries a hidden weight (kind words positive, rude
words negative, filler zero) and an answer's true quality is the sum. The better of two answers is
the one with the higher quality, so every pair has a right label and a flipped label can be
injected at a known rate; thumbs go up for the answers above a quality cut chosen to give a known
up:down ratio. A regime may also bias its labels towards the longer answer, give each prompt a
single thumbed answer (nothing to pair), and set how many passes training makes over its rows.
`draw_regimes` draws regimes with random parameters, for scoring the planner on regimes nobody
chose. The noise estimator is calibrated here and `alignloop bench methods` trains on these.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
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


def _longer_first(a: str, b: str) -> tuple[str, str] | None:
    """(longer, shorter) by word count, or None when both have as many words."""
    la, lb = len(a.split()), len(b.split())
    return None if la == lb else ((a, b) if la > lb else (b, a))


def synthetic_pairs(n: int, flip_rate: float, seed: int, tag: str = "p",
                    length_bias: float = 0.0) -> tuple[pa.Table, int]:
    """n pairs on n distinct prompts (no comparison repeated), each answer pair of different quality;
    a share `length_bias` of pairs labelled by length instead (the longer answer chosen, when the two
    differ in length), then a share `flip_rate` of labels swapped at random. Returns the table and how
    many labels differ from the hidden rule's."""
    rng = random.Random(seed)
    rows, wrong = [], 0
    for i in range(n):
        a, b = _answer(rng), _answer(rng)
        while quality(a) == quality(b) or a == b:
            b = _answer(rng)
        good, bad = (a, b) if quality(a) > quality(b) else (b, a)
        chosen, rejected = good, bad
        # Random numbers are drawn for the bias only when there is one: regimes without it keep their rows.
        if length_bias and rng.random() < length_bias:
            chosen, rejected = _longer_first(good, bad) or (good, bad)
        if rng.random() < flip_rate:
            chosen, rejected = rejected, chosen
        wrong += chosen != good
        rows.append({**_row(i, _prompt(i, tag), f"u{rng.randrange(50)}"), "chosen": chosen, "rejected": rejected})
    return pa.Table.from_pylist(rows, schema=PAIRS_SCHEMA), wrong


def synthetic_thumbs(n_prompts: int, answers_per_prompt: int, up_share: float, seed: int,
                     tag: str = "t", flip_rate: float = 0.0, length_bias: float = 0.0) -> pa.Table:
    """answers_per_prompt answers to each of n_prompts prompts; the best `up_share` of all answers
    get a thumb up, the rest a thumb down. "Best" is by the hidden rule, ties broken at random; for a
    share `length_bias` of answers, by their length instead (on the quality's scale). Then a share
    `flip_rate` of thumbs is turned the other way."""
    rng = random.Random(seed)
    answers = []
    for i in range(n_prompts):
        prompt = _prompt(i, tag)
        seen: set[str] = set()
        while len(seen) < answers_per_prompt:
            seen.add(_answer(rng))
        answers += [(prompt, a) for a in sorted(seen)]

    def judged(answer: str) -> float:
        if length_bias and rng.random() < length_bias:
            # Word counts run 5 to 11 around 7; qualities -3 to 3 around 0: the same spread, roughly.
            return (len(answer.split()) - 7) * 1.5
        return quality(answer)

    keys = [(judged(a), rng.random()) for _, a in answers]
    order = sorted(range(len(answers)), key=lambda j: keys[j], reverse=True)
    n_up = round(up_share * len(answers))
    up = set(order[:n_up])
    rows = []
    for j, (p, a) in enumerate(answers):
        label = j in up
        if flip_rate and rng.random() < flip_rate:
            label = not label
        rows.append({**_row(j, p, f"u{rng.randrange(50)}"), "completion": a, "label": label})
    return pa.Table.from_pylist(rows, schema=UNPAIRED_SCHEMA)


def flipped_thumbs(n_prompts: int, answers_per_prompt: int, up_share: float, seed: int,
                   flip_rate: float) -> tuple[pa.Table, float]:
    """synthetic_thumbs with a share `flip_rate` turned, and the share actually turned (against the same
    thumbs built without flips: the flips draw from the stream after every label is decided)."""
    noisy = synthetic_thumbs(n_prompts, answers_per_prompt, up_share, seed, flip_rate=flip_rate)
    clean = synthetic_thumbs(n_prompts, answers_per_prompt, up_share, seed)
    turned = sum(a != b for a, b in zip(noisy.column("label").to_pylist(), clean.column("label").to_pylist(),
                                        strict=True))
    return noisy, turned / noisy.num_rows


def empty_pairs() -> pa.Table:
    return PAIRS_SCHEMA.empty_table()


def empty_thumbs() -> pa.Table:
    return UNPAIRED_SCHEMA.empty_table()


@dataclass(frozen=True)
class Regime:
    """One kind of feedback: what was collected, how noisy and biased, and how long it is trained on.

    answers_per_prompt 1 gives thumbs nothing can pair (one answer per prompt, as most production
    thumbs are); `epochs` is the passes every arm makes over the regime's judgements (a pair counts
    one, a thumb a half: equal sequences), within the budget's bounds on steps."""

    name: str
    n_pairs: int = 0
    flip_rate: float = 0.0
    n_thumb_prompts: int = 0
    up_share: float = 0.5
    answers_per_prompt: int = 4
    thumb_flip_rate: float = 0.0
    length_bias: float = 0.0
    epochs: float = 2.0
    notes: str = ""

    @property
    def n_thumbs(self) -> int:
        return self.n_thumb_prompts * self.answers_per_prompt

    @property
    def judgements(self) -> float:
        """Feedback in pair units: a pair is two sequences, a thumb one."""
        return self.n_pairs + self.n_thumbs / 2

    def build(self, seed: int) -> tuple[pa.Table, pa.Table]:
        """(unpaired, pairs) canonical tables for this regime."""
        pairs = synthetic_pairs(self.n_pairs, self.flip_rate, seed, tag=f"{self.name}-p",
                                length_bias=self.length_bias)[0] if self.n_pairs else empty_pairs()
        thumbs = synthetic_thumbs(self.n_thumb_prompts, self.answers_per_prompt, self.up_share, seed + 1_000,
                                  tag=f"{self.name}-t", flip_rate=self.thumb_flip_rate,
                                  length_bias=self.length_bias) if self.n_thumb_prompts else empty_thumbs()
        return thumbs, pairs

    def describe(self) -> str:
        """The regime's parameters in a few words, for tables."""
        parts = []
        if self.n_pairs:
            parts.append(f"{self.n_pairs} pairs" + (f" {100 * self.flip_rate:.0f}% flipped" if self.flip_rate else ""))
        if self.n_thumb_prompts:
            ups, downs = self.up_share, 1 - self.up_share
            ratio = f"{ups / downs:.1f}:1" if ups >= downs else f"1:{downs / max(ups, 1e-9):.1f}"
            parts.append(f"{self.n_thumbs} thumbs {ratio}, {self.answers_per_prompt}/prompt"
                         + (f" {100 * self.thumb_flip_rate:.0f}% flipped" if self.thumb_flip_rate else ""))
        if self.length_bias:
            parts.append(f"length bias {100 * self.length_bias:.0f}%")
        parts.append(f"{self.epochs:g} epochs")
        return ", ".join(parts)


def heldout_pairs(n: int, seed: int) -> list[tuple[list[dict[str, str]], str, str]]:
    """Ground-truth (prompt, better, worse) pairs on prompts no regime trains on."""
    table, _ = synthetic_pairs(n, 0.0, seed + 99_991, tag="heldout")
    return [(r["prompt"], r["chosen"], r["rejected"]) for r in table.to_pylist()]


# ------------------------------------------------------------------------------ randomly drawn regimes
def draw_regime(rng: random.Random, name: str) -> Regime:
    """One regime with random parameters: which feedback (pairs, thumbs or both), its size (100 to 20k
    judgements, log-uniform), label noise, thumbs' balance (1:10 to 10:1) and pairability (1, 2 or 4
    answers a prompt), length bias, and passes of training (1 to 20, log-uniform)."""
    kind = rng.choices(("pairs", "thumbs", "mixed"), weights=(0.4, 0.3, 0.3))[0]
    size = round(math.exp(rng.uniform(math.log(100), math.log(20_000))))
    noise = 0.0 if rng.random() < 0.3 else round(rng.uniform(0.0, 0.45), 3)
    up_share = round(1 / (1 + math.exp(-rng.uniform(-math.log(10), math.log(10)))), 3)
    per_prompt = rng.choice((1, 2, 4))
    length_bias = 0.0 if rng.random() < 0.5 else round(rng.uniform(0.0, 0.6), 3)
    epochs = round(math.exp(rng.uniform(0.0, math.log(20))), 2)
    pair_share = {"pairs": 1.0, "thumbs": 0.0, "mixed": rng.uniform(0.1, 0.9)}[kind]
    n_pairs = round(size * pair_share)
    # a thumb is half a judgement (one sequence): size - n_pairs judgements make twice as many thumbs
    n_thumb_prompts = round(2 * (size - n_pairs) / per_prompt)
    return Regime(name, n_pairs=n_pairs, flip_rate=noise if n_pairs else 0.0, n_thumb_prompts=n_thumb_prompts,
                  up_share=up_share, answers_per_prompt=per_prompt,
                  thumb_flip_rate=noise if n_thumb_prompts else 0.0, length_bias=length_bias, epochs=epochs,
                  notes=f"drawn ({kind})")


def draw_regimes(seed: int, n: int, prefix: str = "drawn") -> tuple[Regime, ...]:
    """n regimes drawn with `seed`: the same seed always gives the same regimes."""
    rng = random.Random(seed)
    return tuple(draw_regime(rng, f"{prefix}{seed}-{i:02d}") for i in range(n))
