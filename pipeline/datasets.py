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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from alignloop.schema import CONVERSATION, MESSAGE, prompt_key

if TYPE_CHECKING:  # importing `datasets` costs seconds: only the functions that build one load it
    from datasets import Dataset

    from alignloop.ingest.store import SnapshotSplit


@dataclass(frozen=True)
class Split:
    """Rows of each side as dicts, for the stages that work row by row (tokenising, majority votes). Built
    from what the store's SQL split fetched (Split.from_tables), so it holds at most the capped training
    rows and the held-out rows, never the whole history."""
    train_unpaired: list[dict[str, Any]]
    train_pairs: list[dict[str, Any]]
    holdout_unpaired: list[dict[str, Any]]
    holdout_pairs: list[dict[str, Any]]

    @classmethod
    def from_tables(cls, tables: SnapshotSplit) -> Split:
        return cls(tables.train_unpaired.to_pylist(), tables.train_pairs.to_pylist(),
                   tables.holdout_unpaired.to_pylist(), tables.holdout_pairs.to_pylist())


@dataclass(frozen=True)
class EvalPair:
    prompt: list[dict[str, str]]
    chosen: str
    rejected: str
    votes: int           # judgements behind this pair (majority side)


def split_tables(unpaired: pa.Table, pairs: pa.Table, holdout_fraction: float,
                 max_train_examples: int | None = None) -> SnapshotSplit:
    """The store's SQL split (sql/store/snapshot_side.sql) over canonical tables in memory: by prompt
    hash, oldest first, the training sides capped at their newest max_train_examples rows."""
    import duckdb

    from alignloop.sqlfiles import sql_text
    from alignloop.ingest.store import SnapshotSplit

    con = duckdb.connect()
    try:
        con.execute("SET threads = 1")
        con.execute(sql_text("holdout_macros.sql"))
        out = {}
        for name, table in (("unpaired", unpaired), ("pairs", pairs)):
            con.register(f"{name}_in", table)
            sql = (sql_text("store/snapshot_side.sql").replace("__SNAPSHOT_ROWS__", f"SELECT * FROM {name}_in")
                   .replace("__COLUMNS__", ", ".join(table.schema.names)))
            for held_out, cap in ((False, max_train_examples), (True, None)):
                params = {"holdout_fraction": float(holdout_fraction), "holdout": held_out,
                          "cap": None if cap is None else int(cap)}
                side = "holdout" if held_out else "train"
                out[f"{side}_{name}"] = con.execute(sql, params).to_arrow_table().cast(table.schema)
    finally:
        con.close()
    return SnapshotSplit(**out)


def split_snapshot(unpaired: pa.Table, pairs: pa.Table, holdout_fraction: float,
                   max_train_examples: int | None = None) -> Split:
    """Split canonical rows into train and holdout by prompt hash; keep the newest training rows."""
    return Split.from_tables(split_tables(unpaired, pairs, holdout_fraction, max_train_examples))


def _columns(rows: pa.Table | Sequence[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """The columns of `schema` from an Arrow table, or from row dicts (a few tests and the launcher's file)."""
    if isinstance(rows, pa.Table):
        return rows.select(schema.names).cast(schema)
    return pa.Table.from_pylist([{k: r[k] for k in schema.names} for r in rows], schema=schema)


_PAIR_COLUMNS = pa.schema([("prompt", CONVERSATION), ("chosen", pa.string()), ("rejected", pa.string())])
_THUMB_COLUMNS = pa.schema([("prompt", CONVERSATION), ("completion", pa.string()), ("label", pa.bool_())])


def _assistant(texts: pa.ChunkedArray) -> pa.Array:
    """Each answer as a one-turn assistant conversation, built on the Arrow column (no dict per row)."""
    values = texts.combine_chunks()
    n = len(values)
    turns = pa.StructArray.from_arrays([pa.repeat("assistant", n).cast(pa.string()), values], fields=list(MESSAGE))
    return pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), turns, type=CONVERSATION)


def _dataset(table: pa.Table) -> Dataset:
    from datasets import Dataset

    return Dataset(table.combine_chunks())


def preference_dataset(rows: pa.Table | Sequence[dict[str, Any]]) -> Dataset:
    """TRL's conversational preference format: prompt (messages), chosen, rejected (assistant turns),
    built from Arrow columns."""
    t = _columns(rows, _PAIR_COLUMNS)
    return _dataset(pa.table({"prompt": t["prompt"], "chosen": _assistant(t["chosen"]),
                              "rejected": _assistant(t["rejected"])}))


KTO_INPUTS = ("thumbs", "thumbs+unpaired_pairs", "unpaired_pairs")


def _check_kto_input(train_on: str) -> None:
    if train_on not in KTO_INPUTS:
        raise ValueError(f"hyperparameters.train_on {train_on!r} is not a KTO input; use one of {sorted(KTO_INPUTS)}")


def unpaired_training_rows(unpaired_rows: list[dict[str, Any]], pair_rows: list[dict[str, Any]],
                           train_on: str) -> list[dict[str, Any]]:
    """The (prompt, completion, label) rows KTO trains on: exactly the rows the plan's train_on names.

    "thumbs": the thumbs; "unpaired_pairs": each pair as one desirable and one undesirable row, and no
    thumbs; "thumbs+unpaired_pairs": both.
    """
    _check_kto_input(train_on)
    thumbs = [{"prompt": r["prompt"], "completion": r["completion"], "label": bool(r["label"])}
              for r in unpaired_rows] if train_on != "unpaired_pairs" else []
    split_pairs = [row for r in pair_rows for row in (
        {"prompt": r["prompt"], "completion": r["chosen"], "label": True},
        {"prompt": r["prompt"], "completion": r["rejected"], "label": False},
    )] if train_on != "thumbs" else []
    return thumbs + split_pairs


def unpaired_dataset(unpaired_rows: pa.Table | Sequence[dict[str, Any]],
                     pair_rows: pa.Table | Sequence[dict[str, Any]], seed: int,
                     train_on: str | None = None) -> Dataset:
    """TRL's conversational unpaired format (prompt, completion, label), shuffled, built from Arrow columns.

    The rows are those `train_on` names (as `unpaired_training_rows`); without it, the thumbs when
    there are any, else each pair as one desirable and one undesirable row (side by side before the
    shuffle). KTO's sampler never shuffles, so the order is randomised here.
    """
    thumbs = _columns(unpaired_rows, _THUMB_COLUMNS)
    if train_on is None:
        train_on = "thumbs" if thumbs.num_rows else "unpaired_pairs"
    _check_kto_input(train_on)
    parts = []
    if train_on != "unpaired_pairs":
        parts.append(pa.table({"prompt": thumbs["prompt"], "completion": _assistant(thumbs["completion"]),
                               "label": thumbs["label"]}))
    if train_on != "thumbs":
        pairs = _columns(pair_rows, _PAIR_COLUMNS)
        n = pairs.num_rows
        both = pa.concat_tables([
            pa.table({"prompt": pairs["prompt"], "completion": _assistant(pairs["chosen"]),
                      "label": pa.repeat(True, n).cast(pa.bool_())}),
            pa.table({"prompt": pairs["prompt"], "completion": _assistant(pairs["rejected"]),
                      "label": pa.repeat(False, n).cast(pa.bool_())}),
        ])
        parts.append(both.take(np.arange(2 * n).reshape(2, n).T.ravel()))  # chosen, rejected, chosen, ...
    table = pa.concat_tables(parts)
    order = list(range(table.num_rows))
    random.Random(seed).shuffle(order)
    return _dataset(table.take(pa.array(order, type=pa.int64())))


def prompt_dataset(rows: pa.Table | Sequence[dict[str, Any]]) -> Dataset:
    """Distinct training prompts, for online RL: the policy writes the answers itself. Ordered by
    prompt_key, found in DuckDB with the split's hash (sql/holdout_macros.sql)."""
    import duckdb

    from alignloop.sqlfiles import sql_text

    prompts = rows.select(["prompt"]) if isinstance(rows, pa.Table) else \
        pa.Table.from_pylist([{"prompt": r["prompt"]} for r in rows], schema=pa.schema([("prompt", CONVERSATION)]))
    con = duckdb.connect()
    try:
        con.execute(sql_text("holdout_macros.sql"))
        con.register("prompts_in", prompts)
        distinct = con.execute("SELECT any_value(prompt) AS prompt FROM prompts_in "
                               "GROUP BY sha256(prompt_json_py(prompt)) ORDER BY sha256(prompt_json_py(prompt))"
                               ).to_arrow_table()
    finally:
        con.close()
    return _dataset(distinct.cast(pa.schema([("prompt", CONVERSATION)])))


def holdout_eval_pairs(split: Split, max_examples: int | None = None) -> list[EvalPair]:
    """Distinct held-out preference pairs, each labelled by majority vote (ties dropped).

    From comparisons directly, and from thumbs: an answer's label is its majority thumb; every
    up-answer to a prompt is paired with every down-answer to the same prompt. The set is frozen by
    hashing (see `eval_sample_share`): a pair belongs to it because of its prompt's hash alone, so
    new data adds pairs without pushing old ones out. Ordered by pair hash.
    """
    out = majority_pairs(split.holdout_pairs, split.holdout_unpaired)
    share = eval_sample_share(out, max_examples)
    return [p for p in out if _sample_position(p.prompt) < share]


def majority_pairs(pair_rows: list[dict[str, Any]], unpaired_rows: list[dict[str, Any]]) -> list[EvalPair]:
    """Distinct (prompt, chosen, rejected) pairs by majority vote over comparisons and thumbs, ordered by hash."""
    votes: dict[tuple[str, str, str], list[int]] = {}
    prompts: dict[str, list[dict[str, str]]] = {}

    def vote(prompt: list[dict[str, str]], winner: str, loser: str, weight: int = 1) -> None:
        key = prompt_key(prompt)
        prompts[key] = prompt
        a, b = sorted((winner, loser))
        tally = votes.setdefault((key, a, b), [0, 0])
        tally[0 if winner == a else 1] += weight

    for r in pair_rows:
        vote(r["prompt"], r["chosen"], r["rejected"])

    thumbs: dict[tuple[str, str], list[int]] = {}
    for r in unpaired_rows:
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
    return out


def _sample_position(prompt: list[dict[str, str]]) -> float:
    """Where a prompt falls in [0, 1) for eval-set sampling; independent of the holdout hash."""
    return int(hashlib.sha256(("eval-sample:" + prompt_key(prompt)).encode()).hexdigest()[:8], 16) / 0x1_0000_0000


def eval_sample_share(pairs: list[EvalPair], max_examples: int | None) -> float:
    """The share of held-out prompts scored: 1 (all) unless a cap is set, then the largest of 1, 1/2,
    1/4, ... that keeps the pairs within it.

    A prompt is in the set when its sample position is below the share, so the set only changes when
    a new prompt hashes into it, or (rarely) when growth halves the share; smaller sets nest in larger
    ones. A count cap that kept the first N by hash would instead evict members as data grows.
    """
    if max_examples is None or len(pairs) <= max_examples:
        return 1.0
    positions = sorted(_sample_position(p.prompt) for p in pairs)
    share = 1.0
    while share > 1e-6 and sum(pos < share for pos in positions) > max_examples:
        share /= 2
    return share


def eval_set_hash(pairs: list[EvalPair]) -> str:
    """Identifies the held-out set, so two models' metrics are only compared on the same set."""
    canonical = json.dumps([[p.prompt, p.chosen, p.rejected] for p in pairs], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
