"""How a prompt and its answers become token ids of at most max_length: one rule for training and evaluation.

`encode_turns` renders a prompt and its answers with the model's chat template and splits them where
TRL does. A conversation that does not fit loses its *oldest* prompt tokens first (the newest turns
carry the question being answered), keeping at least one prompt token; only when the answer alone does
not fit is the answer's end cut. A pair's chosen and rejected share one trimmed prompt
(`truncate_pair`). Training and evaluation both call these, so a model is scored on exactly the tokens
of a row it was trained on, and no row is ever dropped for its length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from alignloop.errors import ConfigError


def _ids(encoded: Any) -> list[int]:
    # transformers 5 returns a BatchEncoding (dict-like) from apply_chat_template(tokenize=True).
    if hasattr(encoded, "keys") and "input_ids" in encoded:
        encoded = encoded["input_ids"]
    return [int(i) for i in encoded]


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def encode_turns(tokenizer, prompt: list[dict[str, str]], answers: list[str]) -> tuple[list[int], list[list[int]]]:
    """Prompt ids (with the generation prompt) and each answer's ids, as TRL splits them: the answer
    starts where prompt and prompt + answer stop agreeing."""
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            "base_model: its tokenizer has no chat template, so conversations cannot be rendered for training; "
            "use an instruct/chat model or add a chat_template to its tokenizer_config.json"
        )
    prompt_ids = _ids(tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True))
    fulls = [_ids(tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": a}], tokenize=True))
             for a in answers]
    start = min([len(prompt_ids)] + [_common_prefix(prompt_ids, f) for f in fulls])
    return prompt_ids[:start], [f[start:] for f in fulls]


def fit_to_length(prompt_len: int, answer_len: int, max_length: int) -> tuple[int, int]:
    """(prompt tokens to drop from the start, answer tokens to keep) so that the rest fits max_length."""
    if max_length < 2:
        raise ValueError("max_length must leave room for one prompt and one answer token")
    overflow = prompt_len + answer_len - max_length
    if overflow <= 0:
        return 0, answer_len
    drop = min(overflow, max(prompt_len - 1, 0))
    return drop, min(answer_len, max_length - (prompt_len - drop))


def truncate_pair(prompt_ids: Sequence[int], answers: Sequence[Sequence[int]],
                  max_length: int) -> tuple[list[int], list[list[int]]]:
    """Truncate a prompt shared by several answers (DPO's chosen and rejected) by `fit_to_length`.

    The prompt is trimmed for the longest answer, so every answer sees the same context; with one
    answer this is exactly `fit_to_length`.
    """
    longest = max((len(a) for a in answers), default=0)
    drop, _ = fit_to_length(len(prompt_ids), longest, max_length)
    kept_prompt = list(prompt_ids[drop:])
    room = max_length - len(kept_prompt)
    return kept_prompt, [list(a[:room]) for a in answers]


@dataclass(frozen=True)
class TruncationCount:
    """What fitting rows to max_length cost: rows touched and tokens removed, by part."""

    rows: int = 0
    rows_truncated: int = 0
    rows_prompt_trimmed: int = 0
    rows_answer_cut: int = 0
    prompt_tokens_removed: int = 0
    answer_tokens_removed: int = 0
    rows_dropped: int = 0      # stays 0: the rule trims, it never drops

    def add(self, prompt_removed: int, answer_removed: int) -> TruncationCount:
        return TruncationCount(
            rows=self.rows + 1,
            rows_truncated=self.rows_truncated + (prompt_removed > 0 or answer_removed > 0),
            rows_prompt_trimmed=self.rows_prompt_trimmed + (prompt_removed > 0),
            rows_answer_cut=self.rows_answer_cut + (answer_removed > 0),
            prompt_tokens_removed=self.prompt_tokens_removed + prompt_removed,
            answer_tokens_removed=self.answer_tokens_removed + answer_removed,
            rows_dropped=self.rows_dropped,
        )

    def describe(self) -> str:
        if not self.rows_truncated:
            return f"all {self.rows} training rows fit max_length: none truncated, none dropped"
        return (f"{self.rows_truncated} of {self.rows} training rows truncated to max_length: "
                f"{self.rows_prompt_trimmed} lost their oldest prompt tokens ({self.prompt_tokens_removed} tokens), "
                f"{self.rows_answer_cut} had their answer's end cut ({self.answer_tokens_removed} tokens); none dropped")


def choose_max_length(lengths: Sequence[int], *, quantile: float = 0.95, cap: int = 1024, floor: int = 32,
                      multiple: int = 16) -> int:
    """A max_length from measured row lengths (prompt + longest answer, in tokens).

    The `quantile` of the lengths, rounded up to a multiple of `multiple`, within [floor, cap]: the
    longest few rows are trimmed (oldest prompt tokens first) instead of every batch being padded to
    them. `cap` is the budget's limit on sequence length.
    """
    if not lengths:
        return max(floor, min(cap, 256))
    ordered = sorted(lengths)
    at = ordered[min(len(ordered) - 1, max(0, math.ceil(quantile * len(ordered)) - 1))]
    rounded = -(-at // multiple) * multiple
    return max(floor, min(cap, rounded))
