"""Training rows as token ids: tokenised once (cached beside the snapshot), fitted to max_length by the
shared rule (pipeline/tokenize.py), and put in the order the steps will read them.

TRL tokenises inside each trainer, drops rows whose prompt alone reaches max_length, and cuts answers
at the end; here every row is kept (its oldest prompt tokens go first), counted, and handed to TRL
already tokenised. Batches are grouped by length so few pad tokens are computed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignloop.tokenize import TruncationCount, choose_max_length, encode_turns, truncate_pair

log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "vocab.json", "merges.txt")
# Rows sorted by length inside windows of this many batches, then the batches shuffled: little padding,
# and still a random order of batches.
LENGTH_GROUP_WINDOW = 16


def tokenizer_fingerprint(model_dir: Path) -> str:
    h = hashlib.sha256()
    for name in TOKENIZER_FILES:
        path = Path(model_dir) / name
        if path.is_file():
            h.update(name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _cached(cache_dir: Path | None, kind: str, key_obj: Any, build):
    """build() once per key; the result (a list of dicts of lists of ints) is kept as JSON in cache_dir."""
    if cache_dir is None:
        return build()
    key = hashlib.sha256(json.dumps(key_obj, sort_keys=True, default=str).encode()).hexdigest()[:20]
    path = Path(cache_dir) / "tokens" / f"{kind}-{key}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            log.warning("ignoring an unreadable token cache %s", path)
    value = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{random.getrandbits(32):08x}")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)
    return value


def tokenize_pairs(tokenizer, rows: list[dict[str, Any]], fingerprint: str,
                   cache_dir: Path | None = None) -> list[dict[str, list[int]]]:
    """prompt_ids, chosen_ids, rejected_ids per pair row, untruncated (cached by tokenizer and rows)."""
    def build():
        out = []
        for r in rows:
            prompt_ids, (chosen, rejected) = encode_turns(tokenizer, list(r["prompt"]), [r["chosen"], r["rejected"]])
            out.append({"prompt_ids": prompt_ids, "chosen_ids": chosen, "rejected_ids": rejected})
        return out

    key = [fingerprint, [[r["prompt"], r["chosen"], r["rejected"]] for r in rows]]
    return _cached(cache_dir, "pairs", key, build)


def tokenize_unpaired(tokenizer, rows: list[dict[str, Any]], fingerprint: str,
                      cache_dir: Path | None = None) -> list[dict[str, Any]]:
    """prompt_ids, completion_ids, label per thumbs row, untruncated (cached by tokenizer and rows)."""
    def build():
        out = []
        for r in rows:
            prompt_ids, (completion,) = encode_turns(tokenizer, list(r["prompt"]), [r["completion"]])
            out.append({"prompt_ids": prompt_ids, "completion_ids": completion, "label": bool(r["label"])})
        return out

    key = [fingerprint, [[r["prompt"], r["completion"], bool(r["label"])] for r in rows]]
    return _cached(cache_dir, "unpaired", key, build)


def row_length(row: dict[str, Any]) -> int:
    """Tokens of the row's longest sequence: prompt + its longest answer."""
    answers = [v for k, v in row.items() if k.endswith("_ids") and k != "prompt_ids"]
    return len(row["prompt_ids"]) + max(len(a) for a in answers)


@dataclass(frozen=True)
class FittedRows:
    rows: list[dict[str, Any]]
    max_length: int
    max_length_reason: str
    truncation: TruncationCount


def fit_rows(rows: list[dict[str, Any]], max_length: int | None, cap: int, reason: str | None = None) -> FittedRows:
    """Fit every row to max_length (chosen from the rows' lengths when None); count what was cut.

    `reason` says where a given max_length came from (the plan's, when it chose one)."""
    lengths = [row_length(r) for r in rows]
    if max_length is None:
        max_length = choose_max_length(lengths, cap=cap)
        longest = max(lengths, default=0)
        reason = (f"max_length {max_length} chosen from the training rows' token lengths "
                  f"(95th percentile, rounded up to 16, capped at max_length_cap {cap}; longest row {longest})")
    elif reason is None:
        reason = f"max_length {max_length} set in training.max_length"
    answer_keys = [k for k in (rows[0] if rows else {}) if k.endswith("_ids") and k != "prompt_ids"]
    count = TruncationCount()
    fitted = []
    for r in rows:
        prompt, answers = truncate_pair(r["prompt_ids"], [r[k] for k in answer_keys], max_length)
        count = count.add(len(r["prompt_ids"]) - len(prompt),
                          sum(len(r[k]) - len(a) for k, a in zip(answer_keys, answers, strict=True)))
        fitted.append({**r, "prompt_ids": prompt, **dict(zip(answer_keys, answers, strict=True))})
    return FittedRows(fitted, max_length, reason, count)


def training_order(lengths: list[int], total: int, batch_size: int, seed: int, group_by_length: bool = True) -> list[int]:
    """Row indices for `total` row visits, in the order the steps consume them, `batch_size` at a time.

    Epochs are seeded shuffles of all rows, so every row is read once per epoch. With group_by_length,
    each epoch's rows are sorted by length inside windows of LENGTH_GROUP_WINDOW batches, cut into
    batches, and the batches of a window shuffled: a batch then holds rows of similar length (little
    padding computed), and the order of batches stays random.
    """
    if not lengths:
        return []
    rng = random.Random(seed)
    window = batch_size * LENGTH_GROUP_WINDOW
    order: list[int] = []
    while len(order) < total:
        epoch = list(range(len(lengths)))
        rng.shuffle(epoch)
        if group_by_length:
            epoch = [i for lo in range(0, len(epoch), window)
                     for i in sorted(epoch[lo: lo + window], key=lambda i: (lengths[i], i))]
        order += epoch
    order = order[:total]
    if not group_by_length:
        return order
    batches = [order[j: j + batch_size] for j in range(0, total, batch_size)]
    shuffled: list[list[int]] = []
    for lo in range(0, len(batches), LENGTH_GROUP_WINDOW):
        block = batches[lo: lo + LENGTH_GROUP_WINDOW]
        rng.shuffle(block)
        shuffled += block
    return [i for b in shuffled for i in b]


def padded_tokens(rows: list[dict[str, Any]], order: list[int], batch_size: int, keys: tuple[str, ...]) -> tuple[int, int]:
    """(real tokens, computed tokens incl. padding) of the batches `order` makes, sequences per key."""
    real = computed = 0
    for lo in range(0, len(order), batch_size):
        batch = [rows[i] for i in order[lo: lo + batch_size]]
        lens = [len(r["prompt_ids"]) + len(r[k]) for k in keys for r in batch]
        real += sum(lens)
        computed += max(lens) * len(lens)
    return real, computed


def dataset_fingerprint(rows: list[dict[str, Any]], order: list[int]) -> str:
    """Identifies what the steps will read: the fitted token ids and their order."""
    h = hashlib.sha256()
    h.update(json.dumps(order).encode())
    for r in rows:
        h.update(json.dumps(r, sort_keys=True).encode())
    return h.hexdigest()[:16]
