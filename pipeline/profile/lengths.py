"""How long the training rows are in tokens, counted as training will count them, and what a max_length
would cut.

With the base model's tokenizer the rows are rendered through its chat template and tokenised in
batches, exactly as training tokenises them (pipeline/training/data.py `encode_turns`); a large
snapshot is measured on a seeded sample, and the shape says how many rows that was. Only when no
tokenizer can be loaded are lengths approximated from characters, and the shape says so and why.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from alignloop.tokenize import choose_max_length

# Chat-template tokens around each message when no tokenizer is at hand (ChatML: <|im_start|>role\n ... <|im_end|>\n).
APPROX_TOKENS_PER_MESSAGE = 4
APPROX_CHARS_PER_TOKEN = 4.0
# Rows tokenised at most; more are measured on a seeded sample of this many.
SAMPLE_ROWS = 4000
# Conversations rendered and tokenised per call.
BATCH_ROWS = 512


@dataclass(frozen=True)
class Truncation:
    """What a max_length does to the training rows: training trims the oldest prompt tokens of a row whose
    prompt + longest answer exceeds it (TRL alone would drop the rows whose prompt reaches it)."""

    max_length: int
    counted_with: str            # "tokenizer ..." or "approximate (4 characters a token) ..."
    rows: int                    # rows measured (a sample when sampled_from is set)
    prompt_too_long: int         # the prompt alone reaches max_length: trimmed hard (TRL would drop them)
    truncated: int               # prompt < max_length < prompt + longest answer: trimmed
    p50_tokens: int
    p95_tokens: int
    max_tokens: int
    chosen: bool = False         # max_length was chosen from these lengths (training.max_length unset)
    sampled_from: int | None = None   # training rows in all, when `rows` is a seeded sample of them
    mean_kept_tokens: float | None = None   # a row's tokens after fitting to max_length, on average (what a step costs)

    @property
    def dropped_share(self) -> float:
        return self.prompt_too_long / self.rows if self.rows else 0.0

    @property
    def exact(self) -> bool:
        return self.counted_with.startswith("tokenizer")

    def choice(self) -> str:
        """Where max_length came from."""
        if self.chosen:
            return (f"max_length {self.max_length} chosen from the training rows' token lengths (95th percentile, "
                    "rounded up to 16)")
        return f"max_length {self.max_length} set in training.max_length"

    def describe(self) -> str:
        measured = (f"a seeded sample of {self.rows} of the {self.sampled_from} training rows"
                    if self.sampled_from else f"the {self.rows} training rows")
        cut = self.prompt_too_long + self.truncated
        return (f"{self.choice()}; counted on {measured} with the {self.counted_with}: {cut} of {self.rows} exceed "
                f"it and lose their oldest prompt tokens ({self.prompt_too_long} whose prompt alone reaches it); "
                f"rows are {self.p50_tokens} tokens at the median, {self.p95_tokens} at the 95th percentile, "
                f"{self.max_tokens} at most")


def approximate_tokens(text: str) -> int:
    return math.ceil(len(text) / APPROX_CHARS_PER_TOKEN)


def _answers(row: dict[str, Any]) -> list[str]:
    return [row["completion"]] if "completion" in row else [row["chosen"], row["rejected"]]


def approximate_lengths(train_unpaired: pa.Table, train_pairs: pa.Table) -> list[tuple[int, int]]:
    """(prompt tokens, prompt + longest answer tokens) per row, from characters and a per-message overhead.

    Reads the tables' columns: each distinct prompt is counted once, each answer once per row."""
    con = duckdb.connect()
    try:
        con.execute("SET threads=1")
        con.register("train_unpaired", train_unpaired.select(["prompt", "completion"]))
        con.register("train_pairs", train_pairs.select(["prompt", "chosen", "rejected"]))
        rows = con.execute(
            "WITH r AS (SELECT prompt, completion AS a, NULL::VARCHAR AS b FROM train_unpaired "
            "UNION ALL SELECT prompt, chosen, rejected FROM train_pairs), "
            "k AS (SELECT to_json(prompt)::VARCHAR AS pkey, prompt, a, b FROM r) "
            "SELECT dense_rank() OVER (ORDER BY pkey) - 1 AS pid, a, b FROM k").to_arrow_table()
        prompts = con.execute(
            "SELECT list_transform(any_value(prompt), lambda m: m.content) FROM "
            "(SELECT prompt, to_json(prompt)::VARCHAR AS pkey FROM train_unpaired "
            "UNION ALL SELECT prompt, to_json(prompt)::VARCHAR FROM train_pairs) GROUP BY pkey ORDER BY pkey"
        ).to_arrow_table().column(0).to_pylist()
    finally:
        con.close()
    prompt_tokens = [sum(approximate_tokens(c) + APPROX_TOKENS_PER_MESSAGE for c in contents)
                     + APPROX_TOKENS_PER_MESSAGE for contents in prompts]
    out = []
    for pid, a, b in zip(rows.column("pid").to_pylist(), rows.column("a").to_pylist(), rows.column("b").to_pylist(),
                         strict=True):
        p = prompt_tokens[pid]
        longest = max(approximate_tokens(a), approximate_tokens(b) if b is not None else 0)
        out.append((p, p + longest + APPROX_TOKENS_PER_MESSAGE))
    return out


def _row_dicts(train_unpaired: pa.Table, train_pairs: pa.Table, indices: list[int] | None) -> list[dict[str, Any]]:
    """The rows at `indices` (thumbs first, then pairs; all when None) as dicts: only those are tokenised."""
    thumbs = train_unpaired.select(["prompt", "completion"])
    pairs = train_pairs.select(["prompt", "chosen", "rejected"])
    if indices is None:
        return thumbs.to_pylist() + pairs.to_pylist()
    n = thumbs.num_rows
    return (thumbs.take(pa.array([i for i in indices if i < n], type=pa.int64())).to_pylist()
            + pairs.take(pa.array([i - n for i in indices if i >= n], type=pa.int64())).to_pylist())


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def token_lengths(tokenizer, rows: Sequence[dict[str, Any]]) -> list[tuple[int, int]]:
    """(prompt tokens, prompt + longest answer tokens) per row, with the tokenizer and its chat template.

    As training splits a row: the prompt is rendered with the generation prompt, each answer as the
    prompt plus an assistant turn, and the answer starts where the two stop agreeing; so the row's
    length is its longest rendered conversation. Rendered and tokenised BATCH_ROWS rows at a time.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the tokenizer has no chat template")
    out: list[tuple[int, int]] = []
    for lo in range(0, len(rows), BATCH_ROWS):
        batch = rows[lo: lo + BATCH_ROWS]
        prompts = [list(r["prompt"]) for r in batch]
        convs = [p + [{"role": "assistant", "content": a}] for p, r in zip(prompts, batch, strict=True)
                 for a in _answers(r)]
        texts = (tokenizer.apply_chat_template(prompts, tokenize=False, add_generation_prompt=True)
                 + tokenizer.apply_chat_template(convs, tokenize=False))
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        prompt_ids, full_ids = ids[: len(batch)], iter(ids[len(batch):])
        for p_ids, r in zip(prompt_ids, batch, strict=True):
            fulls = [next(full_ids) for _ in _answers(r)]
            start = min([len(p_ids)] + [_common_prefix(p_ids, f) for f in fulls])
            out.append((start, max(len(f) for f in fulls)))
    return out


def sample_indices(n_rows: int, sample_rows: int, seed: int = 0) -> list[int]:
    """The rows (thumbs first, then pairs) a tokenizer measures when there are more than sample_rows."""
    return sorted(random.Random(seed).sample(range(n_rows), sample_rows))


def measure_truncation(train_unpaired: pa.Table, train_pairs: pa.Table, max_length: int | None, *,
                       tokenizer=None, approximate_because: str = "", cap: int = 1024,
                       sample_rows: int = SAMPLE_ROWS, seed: int = 0, sampled_from: int | None = None) -> Truncation:
    """How many training rows a max_length would cut; with max_length None, it is chosen from the lengths
    as training chooses it (pipeline/tokenize.py `choose_max_length`, capped at `cap`).

    sampled_from: the tables given are already the seeded sample (sample_indices) of that many rows."""
    n_rows = train_unpaired.num_rows + train_pairs.num_rows
    if tokenizer is not None:
        indices = None
        if sampled_from is None and n_rows > sample_rows:
            sampled_from = n_rows
            indices = sample_indices(n_rows, sample_rows, seed)
        lengths = token_lengths(tokenizer, _row_dicts(train_unpaired, train_pairs, indices))
        name = Path(str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)).name
        counted_with = f"tokenizer of the base model ({name}) and its chat template"
    else:
        lengths = approximate_lengths(train_unpaired, train_pairs)
        counted_with = f"approximate count ({APPROX_CHARS_PER_TOKEN:g} characters a token)"
        if approximate_because:
            counted_with += f": {approximate_because}"
    totals = np.array([t for _, t in lengths]) if lengths else np.zeros(1)
    chosen = max_length is None
    if chosen:
        max_length = choose_max_length([t for _, t in lengths], cap=cap)
    return Truncation(
        max_length=max_length,
        counted_with=counted_with,
        rows=len(lengths),
        prompt_too_long=sum(p >= max_length for p, _ in lengths),
        truncated=sum(p < max_length < t for p, t in lengths),
        p50_tokens=int(np.percentile(totals, 50)),
        p95_tokens=int(np.percentile(totals, 95)),
        max_tokens=int(totals.max()),
        chosen=chosen,
        sampled_from=sampled_from,
        mean_kept_tokens=float(np.minimum(totals, max_length).mean()) if lengths else None,
    )
