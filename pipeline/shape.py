"""Measure a snapshot's data shape: what kind of feedback it holds, how much, how balanced, how noisy.

The planner decides from these numbers alone, so every number here is one a reviewer can check.
Label noise is estimated from repeated judgements of the same item: under independent flips with
rate p, two votes disagree with probability d = 2p(1-p), hence p = (1 - sqrt(1 - 2d)) / 2.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.conversions import derived_counts
from pipeline.schema import holdout_flags
from pipeline.sqlfiles import sql_text


@dataclass(frozen=True)
class Agreement:
    """How repeated judgements of the same item agree."""

    repeated_votes: int          # votes on items judged at least twice
    repeated_groups: int         # items judged at least twice
    contradictory_share: float | None   # share of those items with both outcomes
    flip_rate: float | None      # estimated probability that one label is flipped

    @classmethod
    def from_counts(cls, votes: int, groups: int, contradictory: int, disagreeing: float, vote_pairs: float) -> Agreement:
        if vote_pairs == 0:
            return cls(int(votes), int(groups), None, None)
        d = min(float(disagreeing) / float(vote_pairs), 0.5)
        return cls(int(votes), int(groups), contradictory / groups, (1.0 - math.sqrt(1.0 - 2.0 * d)) / 2.0)


@dataclass(frozen=True)
class DataShape:
    n_unpaired: int
    n_up: int
    n_pairs: int
    n_unpaired_train: int
    n_pairs_train: int
    n_prompts: int
    up_share: float | None
    pair_agreement: Agreement
    thumb_agreement: Agreement
    chosen_longer_share: float | None   # length bias: how often the preferred answer is the longer one
    first_ts: str | None
    last_ts: str | None
    # Rows conversions would derive when the snapshot is read (pipeline/conversions.py), and what they cannot use.
    derived: dict[str, int] = field(default_factory=dict)

    @property
    def n_down(self) -> int:
        return self.n_unpaired - self.n_up

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "n_down": self.n_down}


def _agreement(con: duckdb.DuckDBPyConnection, votes_sql: str) -> Agreement:
    con.execute(f"CREATE OR REPLACE TEMP VIEW votes_in AS {sql_text(votes_sql)}")
    return Agreement.from_counts(*con.execute(sql_text("mart_label_agreement.sql")).fetchone())


def measure_shape(unpaired: pa.Table, pairs: pa.Table, holdout_fraction: float) -> DataShape:
    """Counts, balance, noise and length bias of canonical (unpaired, pairs) tables."""
    con = duckdb.connect()
    try:
        con.register("unpaired_in", unpaired)
        con.register("pairs_in", pairs)
        n_up = con.execute("SELECT count(*) FILTER (WHERE label) FROM unpaired_in").fetchone()[0]
        n_prompts, first_ts, last_ts = con.execute(
            "SELECT count(DISTINCT to_json(prompt)::VARCHAR), min(ts), max(ts) FROM "
            "(SELECT prompt, ts FROM unpaired_in UNION ALL SELECT prompt, ts FROM pairs_in)"
        ).fetchone()
        chosen_longer = con.execute(
            "SELECT avg(CASE WHEN length(chosen) > length(rejected) THEN 1.0 ELSE 0.0 END) FROM pairs_in"
        ).fetchone()[0]
        pair_agreement = _agreement(con, "stg_pair_votes.sql")
        thumb_agreement = _agreement(con, "stg_thumb_votes.sql")
    finally:
        con.close()
    return DataShape(
        n_unpaired=unpaired.num_rows,
        n_up=int(n_up),
        n_pairs=pairs.num_rows,
        n_unpaired_train=_count_train(unpaired, holdout_fraction),
        n_pairs_train=_count_train(pairs, holdout_fraction),
        n_prompts=int(n_prompts),
        up_share=(n_up / unpaired.num_rows) if unpaired.num_rows else None,
        pair_agreement=pair_agreement,
        thumb_agreement=thumb_agreement,
        chosen_longer_share=None if chosen_longer is None else float(chosen_longer),
        first_ts=first_ts.isoformat() if first_ts else None,
        last_ts=last_ts.isoformat() if last_ts else None,
        derived=asdict(derived_counts(unpaired, pairs)),
    )


def _count_train(table: pa.Table, holdout_fraction: float) -> int:
    return sum(not h for h in holdout_flags(table.column("prompt"), holdout_fraction))
