"""Measure a snapshot's data profile: what kind of feedback it holds, how much, how balanced, how noisy.

The planner decides from these numbers alone, so every number here is one a reviewer can check.
Noise comes from every signal the votes carry (pipeline/profile/noise.py), and, when none of them rests
on enough items, from a cheap cross-fitted reward model (pipeline/profile/reward_model.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from alignloop.conversions import derived_counts_of
from alignloop.profile import lengths, noise, reward_model
from alignloop.profile.lengths import Truncation, measure_truncation
from alignloop.profile.noise import NoiseEstimate
from alignloop.sqlfiles import sql_text


@dataclass(frozen=True)
class DataProfile:
    n_unpaired: int
    n_up: int
    n_pairs: int
    n_unpaired_train: int
    n_up_train: int
    n_pairs_train: int
    n_prompts: int
    up_share: float | None
    pairable_prompts_train: int          # training prompts with an up and a down answer
    pairs_from_thumbs_train: int         # up x down answer pairs those prompts give
    pair_noise: NoiseEstimate | None     # the estimate a plan may rest on (None: no signal has enough support)
    thumb_noise: NoiseEstimate | None
    noise_signals: tuple[NoiseEstimate, ...]   # every signal measured, with or without enough support
    chosen_longer_share: float | None    # length bias: how often the preferred answer is the longer one
    up_mean_chars: float | None
    down_mean_chars: float | None
    truncation: Truncation | None
    first_ts: str | None
    last_ts: str | None
    # Rows conversions would derive when the snapshot is read (pipeline/conversions.py), and what they cannot use.
    derived: dict[str, int] = field(default_factory=dict)
    # Votes that preferred neither answer (comparisons shape), kept as observed and never trained on as pairs.
    n_ties: int = 0
    n_both_bad: int = 0

    @property
    def n_down(self) -> int:
        return self.n_unpaired - self.n_up

    @property
    def n_down_train(self) -> int:
        return self.n_unpaired_train - self.n_up_train

    @property
    def pair_flip_rate(self) -> float | None:
        return None if self.pair_noise is None else self.pair_noise.flip_rate

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["noise_signals"] = [asdict(s) for s in self.noise_signals]
        # The earlier keys, for readers of older plan.json files (the review page reads flip_rate there).
        legacy = {"pair_agreement": {"flip_rate": self.pair_flip_rate},
                  "thumb_agreement": {"flip_rate": None if self.thumb_noise is None else self.thumb_noise.flip_rate}}
        return {**d, "n_down": self.n_down, "n_down_train": self.n_down_train, **legacy}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataProfile:
        """Rebuild a shape from to_dict() output (a plan.json), e.g. to re-plan with other settings."""
        fields = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for key in ("pair_noise", "thumb_noise"):
            fields[key] = NoiseEstimate(**d[key]) if d.get(key) else None
        fields["noise_signals"] = tuple(NoiseEstimate(**s) for s in d.get("noise_signals", []))
        fields["truncation"] = Truncation(**d["truncation"]) if d.get("truncation") else None
        return cls(**fields)


def _votes(con: duckdb.DuckDBPyConnection, votes_sql: str) -> None:
    """Materialise one kind of votes once: both marts read them (their item keys hash whole texts)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE votes_in AS {sql_text(votes_sql)}")


def _items(con: duckdb.DuckDBPyConnection, mart_sql: str) -> np.ndarray:
    return np.array(con.execute(f"SELECT n, k FROM ({sql_text(mart_sql)})").fetchall(), dtype=float).reshape(-1, 2)


def measure_noise(con: duckdb.DuckDBPyConnection, use_model: bool = True, use_thumbs_model: bool = False
                  ) -> tuple[tuple[NoiseEstimate, ...], NoiseEstimate | None, NoiseEstimate | None]:
    """Every noise signal of the relations `unpaired_in`/`pairs_in`, and the one each kind of data rests on.
    use_model / use_thumbs_model: fall back on the reward model (for pairs / for thumbs) when no vote-based
    signal of that kind has enough support."""
    _votes(con, "stg_pair_votes.sql")
    pair_signals = [
        noise.from_repeated_items("repeated_pairs", _items(con, "mart_repeated_items.sql"),
                                  "pairs judged two or more times (in either order)"),
        noise.from_repeated_items("annotator_pairs", _items(con, "mart_annotator_items.sql"),
                                  "pairs judged by two or more people"),
        # the triads read the pair votes too: before votes_in holds thumbs
        noise.from_triads(np.array(con.execute(
            f"SELECT triads, cyclic FROM ({sql_text('mart_pair_triads.sql')})").fetchall(), dtype=float)),
    ]
    _votes(con, "stg_thumb_votes.sql")
    thumb_signals = [
        noise.from_repeated_items("contradictory_thumbs", _items(con, "mart_repeated_items.sql"),
                                  "answers thumbed two or more times"),
        noise.from_repeated_items("annotator_thumbs", _items(con, "mart_annotator_items.sql"),
                                  "answers thumbed by two or more people"),
    ]
    con.execute("DROP TABLE votes_in")
    pair_noise = _rest_on(pair_signals, use_model, lambda: reward_model.estimate_from_table(
        con.execute("SELECT prompt, chosen, rejected FROM pairs_in").to_arrow_table()))
    thumb_noise = _rest_on(thumb_signals, use_thumbs_model, lambda: reward_model.estimate_from_thumbs_table(
        con.execute("SELECT prompt, completion, label FROM unpaired_in").to_arrow_table()))
    return tuple(pair_signals + thumb_signals), pair_noise, thumb_noise


def _rest_on(signals: list[NoiseEstimate], use_model: bool,
             model_estimate: Callable[[], NoiseEstimate]) -> NoiseEstimate | None:
    """The vote-based signal to rest on; when none has enough support and use_model, ask a cheap reward model
    where it confidently disagrees (its estimate joins `signals` either way)."""
    chosen = _narrowest(signals)
    if chosen is None and use_model:
        model = model_estimate()
        signals.append(model)
        chosen = model if model.enough else None
    return chosen


def _narrowest(signals: list[NoiseEstimate]) -> NoiseEstimate | None:
    """The supported estimate with the tightest interval (most evidence per point of uncertainty)."""
    usable = [s for s in signals if s.enough and s.flip_rate is not None]
    return min(usable, key=lambda s: (s.high - s.low, -s.support)) if usable else None


def measure_profile(unpaired: pa.Table, pairs: pa.Table, holdout_fraction: float, **kw: Any) -> DataProfile:
    """Counts, balance, pairability, noise, length bias and truncation of canonical (unpaired, pairs) tables
    (keyword settings as measure_relations)."""
    con = duckdb.connect()
    try:
        con.execute("SET threads=1")
        con.register("unpaired_arrow", unpaired)
        con.register("pairs_arrow", pairs)
        copy_measured(con, "SELECT * FROM unpaired_arrow", "SELECT * FROM pairs_arrow")
        return measure_relations(con, holdout_fraction, **kw)
    finally:
        con.close()


def copy_measured(con: duckdb.DuckDBPyConnection, unpaired_sql: str, pairs_sql: str, order_by: str = "",
                  ties_sql: str = "SELECT NULL::VARCHAR AS verdict WHERE false") -> None:
    """Copy the rows to measure into the temp tables `unpaired_in` and `pairs_in` that measure_relations
    reads, each row with its prompt's place in the train/holdout split, `_position` (sql/holdout_macros.sql;
    held out when _position < holdout_fraction): computed once per row here, not once per reader. The
    verdicts of the ties (`ties_sql`, none by default) go to `ties_in`: they are only counted."""
    con.execute(sql_text("holdout_macros.sql"))
    for name, sql in (("unpaired_in", unpaired_sql), ("pairs_in", pairs_sql)):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT *, holdout_position(prompt) AS _position "
                    f"FROM ({sql}) {order_by}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE ties_in AS {ties_sql}")


def measure_relations(con: duckdb.DuckDBPyConnection, holdout_fraction: float, *, max_length: int | None = None,
                      max_length_cap: int | None = None, tokenizer=None, approximate_because: str = "",
                      model_noise: bool = True) -> DataProfile:
    """The shape of the canonical rows in the tables `unpaired_in` and `pairs_in` of `con` (oldest first;
    pairs may carry `derived_from`), as copy_measured writes them: from Arrow tables (measure_profile), or
    from a store snapshot's rows (FeedbackStore.measure), which then never leave DuckDB.

    Truncation is measured when a max_length is set, or chosen (up to max_length_cap) from the rows'
    lengths when only the cap is given. Lengths are counted with `tokenizer` (the base model's, with
    its chat template) on a seeded sample of at most lengths.SAMPLE_ROWS training rows, fetched alone;
    without it they are approximated from characters, and the shape says so, with
    `approximate_because`. model_noise=False skips the reward-model noise estimate.
    """
    whole = _whole_measures(con)
    n_unpaired, n_up, n_pairs = whole["n_unpaired"], whole["n_up"], whole["n_pairs"]
    # The thumbs' own model estimate only where a plan reads it: thumbs with no pairs beside them (with
    # pairs, the pairs' estimate decides); it costs about a second on a large store.
    signals, pair_noise, thumb_noise = measure_noise(con, use_model=model_noise and n_pairs > 0,
                                                     use_thumbs_model=model_noise and n_unpaired > 0 and not n_pairs)
    # The rows whose prompt the split keeps for training. The fraction is inlined as text read back as the
    # same double: views take no parameters.
    train = f"NOT _position < '{float(holdout_fraction)!r}'::DOUBLE"
    derived, pairable = derived_counts_of(con, train)
    n_unpaired_train, n_up_train, n_pairs_train, truncation = _training_side(
        con, train, max_length, max_length_cap, tokenizer, approximate_because)
    first_ts, last_ts = whole["first_ts"], whole["last_ts"]
    return DataProfile(
        n_unpaired=int(n_unpaired),
        n_up=int(n_up),
        n_pairs=int(n_pairs),
        n_unpaired_train=int(n_unpaired_train),
        n_up_train=int(n_up_train),
        n_pairs_train=int(n_pairs_train),
        n_prompts=int(whole["n_prompts"]),
        up_share=(n_up / n_unpaired) if n_unpaired else None,
        pairable_prompts_train=pairable.prompts,
        pairs_from_thumbs_train=pairable.pairs,
        pair_noise=pair_noise,
        thumb_noise=thumb_noise,
        noise_signals=signals,
        chosen_longer_share=None if whole["chosen_longer"] is None else float(whole["chosen_longer"]),
        up_mean_chars=None if whole["up_chars"] is None else float(whole["up_chars"]),
        down_mean_chars=None if whole["down_chars"] is None else float(whole["down_chars"]),
        truncation=truncation,
        first_ts=first_ts.isoformat() if first_ts else None,
        last_ts=last_ts.isoformat() if last_ts else None,
        derived=asdict(derived),
        n_ties=int(whole["n_ties"]),
        n_both_bad=int(whole["n_both_bad"]),
    )


def _whole_measures(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Counts, prompts, time range and answer lengths over all rows of unpaired_in and pairs_in (and ties_in's
    verdicts)."""
    n_unpaired, n_up = con.execute("SELECT count(*), count(*) FILTER (WHERE label) FROM unpaired_in").fetchone()
    n_pairs = con.execute("SELECT count(*) FROM pairs_in").fetchone()[0]
    n_ties, n_both_bad = con.execute("SELECT count(*) FILTER (WHERE verdict = 'tie'), "
                                     "count(*) FILTER (WHERE verdict = 'both_bad') FROM ties_in").fetchone()
    n_prompts, first_ts, last_ts = con.execute(
        "SELECT count(DISTINCT to_json(prompt)::VARCHAR), min(ts), max(ts) FROM "
        "(SELECT prompt, ts FROM unpaired_in UNION ALL SELECT prompt, ts FROM pairs_in)"
    ).fetchone()
    chosen_longer = con.execute(
        "SELECT avg(CASE WHEN length(chosen) > length(rejected) THEN 1.0 ELSE 0.0 END) FROM pairs_in"
    ).fetchone()[0]
    up_chars, down_chars = con.execute(
        "SELECT avg(length(completion)) FILTER (WHERE label), avg(length(completion)) FILTER (WHERE NOT label) "
        "FROM unpaired_in"
    ).fetchone()
    return {"n_unpaired": n_unpaired, "n_up": n_up, "n_pairs": n_pairs, "n_ties": n_ties, "n_both_bad": n_both_bad,
            "n_prompts": n_prompts,
            "first_ts": first_ts, "last_ts": last_ts, "chosen_longer": chosen_longer, "up_chars": up_chars,
            "down_chars": down_chars}


def _training_side(con: duckdb.DuckDBPyConnection, train: str, max_length: int | None, max_length_cap: int | None,
                   tokenizer, approximate_because: str) -> tuple[int, int, int, Truncation | None]:
    """(unpaired, up, pairs) training rows, and the truncation measured on them, over views of the rows the
    split keeps for training (`train`), in row order (_row). Views, not copies: copying their texts would
    cost more than the rest of the split."""
    try:
        for name, source, columns in (("train_unpaired", "unpaired_in", "prompt, completion, label"),
                                      ("train_pairs", "pairs_in", "prompt, chosen, rejected")):
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT rowid AS _row, {columns} FROM {source} "
                        f"WHERE {train}")
        n_unpaired_train, n_up_train = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE label) FROM train_unpaired").fetchone()
        n_pairs_train = con.execute("SELECT count(*) FROM train_pairs").fetchone()[0]
        truncation = None
        if max_length is not None or max_length_cap is not None:
            truncation = _truncation(con, n_unpaired_train, n_pairs_train, max_length, cap=max_length_cap or 1024,
                                     tokenizer=tokenizer, approximate_because=approximate_because)
    finally:
        con.execute("DROP VIEW IF EXISTS train_unpaired")
        con.execute("DROP VIEW IF EXISTS train_pairs")
    return n_unpaired_train, n_up_train, n_pairs_train, truncation


def _truncation(con: duckdb.DuckDBPyConnection, n_unpaired: int, n_pairs: int, max_length: int | None, *, cap: int,
                tokenizer, approximate_because: str) -> Truncation:
    """measure_truncation over the views train_unpaired and train_pairs. With a tokenizer only the seeded
    sample it measures is fetched (the same rows measure_truncation would pick from whole tables): the
    sample's positions among the training rows are found reading row numbers alone, then their texts."""
    n_rows = n_unpaired + n_pairs
    sample_rows = lengths.SAMPLE_ROWS
    thumbs_sql = "SELECT prompt, completion FROM train_unpaired"
    pairs_sql = "SELECT prompt, chosen, rejected FROM train_pairs"
    if tokenizer is None or n_rows <= sample_rows:
        thumbs = con.execute(f"{thumbs_sql} ORDER BY _row").to_arrow_table()
        pairs = con.execute(f"{pairs_sql} ORDER BY _row").to_arrow_table()
        return measure_truncation(thumbs, pairs, max_length, tokenizer=tokenizer, approximate_because=approximate_because,
                                  cap=cap, sample_rows=sample_rows)
    indices = lengths.sample_indices(n_rows, sample_rows)

    def sampled(sql: str, view: str, positions: list[int]) -> pa.Table:
        return con.execute(
            f"{sql} WHERE _row IN (SELECT _row FROM (SELECT _row, row_number() OVER (ORDER BY _row) - 1 AS i "
            f"FROM {view}) WHERE i IN (SELECT unnest(?::BIGINT[]))) ORDER BY _row", [positions]).to_arrow_table()

    thumbs = sampled(thumbs_sql, "train_unpaired", [i for i in indices if i < n_unpaired])
    pairs = sampled(pairs_sql, "train_pairs", [i - n_unpaired for i in indices if i >= n_unpaired])
    return measure_truncation(thumbs, pairs, max_length, tokenizer=tokenizer, cap=cap, sample_rows=sample_rows,
                              sampled_from=n_rows)
