"""Rows derived from a snapshot when it is read, never stored as if observed.

Pairs from thumbs (an up- and a down-rated answer to the same prompt), thumbs from pairs (chosen up,
rejected down), pairs from ranks (every better-ranked answer of a group over every worse-ranked
one) and pairs from ratings (every answer rated at least the source's margin above another answer to
the same prompt). The store keeps ranks and rated answers as observed, in its `ranks` table, and
`FeedbackStore.read_snapshot` adds their pairs. Derived rows carry `derived_from` ('thumbs', 'pairs',
'ranks' or 'ratings'), and `derived_counts` says how many each conversion gives and what it could
not use, so nothing is dropped without a count.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from alignloop.schema import PAIRS_SCHEMA, RANKS_SCHEMA, UNPAIRED_SCHEMA
from alignloop.sqlfiles import sql_text

DERIVED_PAIRS_SCHEMA = PAIRS_SCHEMA.append(pa.field("derived_from", pa.string()))
DERIVED_UNPAIRED_SCHEMA = UNPAIRED_SCHEMA.append(pa.field("derived_from", pa.string()))


@dataclass(frozen=True)
class DerivedCounts:
    pairs_from_thumbs: int          # up-answer x down-answer per prompt
    thumbs_from_pairs: int          # two per stored pair
    thumbed_answers: int            # distinct (prompt, answer) with thumbs
    tied_answers: int               # as many ups as downs: no label, so in no derived pair
    answers_without_opposite: int   # labelled, but no answer to the same prompt has the other label
    pairs_from_ranks: int = 0       # of the snapshot's pairs, those derived from ranks (not observed)
    pairs_from_ratings: int = 0     # of the snapshot's pairs, those derived from rated answers (not observed)


def _connect(unpaired: pa.Table, pairs: pa.Table) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET threads = 1")
    con.register("unpaired_in", unpaired)
    con.register("pairs_in", pairs)
    con.execute(f"CREATE TEMP VIEW answer_labels AS {sql_text('derived_answer_labels.sql')}")
    return con


def pairs_from_thumbs(unpaired: pa.Table) -> pa.Table:
    """Every majority-up answer to a prompt preferred over every majority-down answer to it."""
    return _derive(unpaired, pa.Table.from_pylist([], PAIRS_SCHEMA), "derived_pairs_from_thumbs.sql",
                   DERIVED_PAIRS_SCHEMA)


def thumbs_from_pairs(pairs: pa.Table) -> pa.Table:
    """A pair's chosen answer as a thumbs-up and its rejected answer as a thumbs-down."""
    return _derive(pa.Table.from_pylist([], UNPAIRED_SCHEMA), pairs, "derived_thumbs_from_pairs.sql",
                   DERIVED_UNPAIRED_SCHEMA)


def _derive(unpaired: pa.Table, pairs: pa.Table, sql_name: str, schema: pa.Schema) -> pa.Table:
    """The rows sql/<sql_name> derives from the given thumbs and pairs, oldest first, in `schema`."""
    con = _connect(unpaired, pairs)
    try:
        table = con.execute(f"{sql_text(sql_name)} ORDER BY ts, event_id").to_arrow_table()
    finally:
        con.close()
    return table.select(schema.names).cast(schema)


def pairs_from_ranks(ranks: pa.Table) -> pa.Table:
    """Every better-ranked answer of a group preferred over every worse-ranked answer of it."""
    con = duckdb.connect()
    try:
        con.execute("SET threads = 1")
        con.register("ranks_in", ranks.select(RANKS_SCHEMA.names))
        table = con.execute(f"{sql_text('derived_pairs_from_ranks.sql')} ORDER BY ts, event_id").to_arrow_table()
    finally:
        con.close()
    return table.select(DERIVED_PAIRS_SCHEMA.names).cast(DERIVED_PAIRS_SCHEMA)


def with_pairs_from_ranks(pairs: pa.Table, ranks: pa.Table) -> pa.Table:
    """A snapshot's pairs as read: the observed ones (`derived_from` NULL) and those derived from its
    ranks ('ranks') and rated answers ('ratings'), oldest first."""
    observed = pairs.select(PAIRS_SCHEMA.names).cast(PAIRS_SCHEMA).append_column(
        pa.field("derived_from", pa.string()), pa.nulls(pairs.num_rows, pa.string()))
    if ranks.num_rows == 0:
        return observed.cast(DERIVED_PAIRS_SCHEMA)
    both = pa.concat_tables([observed.cast(DERIVED_PAIRS_SCHEMA), pairs_from_ranks(ranks)])
    return both.sort_by([("ts", "ascending"), ("event_id", "ascending")])


def derived_counts(unpaired: pa.Table, pairs: pa.Table) -> DerivedCounts:
    """How many rows each conversion would give, computed without building them."""
    con = _connect(unpaired, pairs)
    try:
        return derived_counts_of(con)[0]
    finally:
        con.close()


@dataclass(frozen=True)
class Pairable:
    """The training prompts that could give pairs from thumbs."""
    prompts: int    # prompts with a majority-up and a majority-down answer
    pairs: int      # the up x down answer pairs they give


def derived_counts_of(con: duckdb.DuckDBPyConnection, train: str | None = None
                      ) -> tuple[DerivedCounts, Pairable | None]:
    """derived_counts of the relations unpaired_in and pairs_in of `con` (pairs may carry derived_from); with
    `train`, the SQL condition on unpaired_in's columns that keeps a row for training (the same for every
    row of a prompt, as the split is by prompt: pipeline/profile/measure.py), also what the training side's
    thumbs could pair. One grouping of the answers gives both."""
    # Each answer's majority label as derived_answer_labels.sql gives it (tests/unit/test_conversions.py checks
    # that these counts are the rows pairs_from_thumbs builds).
    row = con.execute(
        f"""
        WITH answers AS (
            SELECT md5(to_json(prompt)::VARCHAR) AS prompt_key,
                   CASE WHEN count(*) FILTER (WHERE label) > count(*) FILTER (WHERE NOT label) THEN true
                        WHEN count(*) FILTER (WHERE label) < count(*) FILTER (WHERE NOT label) THEN false END AS label,
                   bool_and({train or 'true'}) AS train
            FROM unpaired_in GROUP BY prompt_key, completion),
        per_prompt AS (
            SELECT count(*) FILTER (WHERE label) AS n_up, count(*) FILTER (WHERE NOT label) AS n_down,
                   count(*) AS n_answers, count(*) FILTER (WHERE label IS NULL) AS n_tied, bool_and(train) AS train
            FROM answers GROUP BY prompt_key)
        SELECT coalesce(sum(n_up * n_down), 0), coalesce(sum(n_answers), 0), coalesce(sum(n_tied), 0),
               coalesce(sum(CASE WHEN n_up = 0 OR n_down = 0 THEN n_up + n_down ELSE 0 END), 0),
               count(*) FILTER (WHERE train AND n_up > 0 AND n_down > 0),
               coalesce(sum(n_up * n_down) FILTER (WHERE train), 0)
        FROM per_prompt
        """
    ).fetchone()
    pairs_columns = {r[0] for r in con.execute("DESCRIBE pairs_in").fetchall()}
    n_pairs, from_ranks, from_ratings = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE derived_from = 'ranks'), count(*) FILTER (WHERE derived_from = "
        "'ratings') FROM pairs_in" if "derived_from" in pairs_columns else "SELECT count(*), 0, 0 FROM pairs_in"
    ).fetchone()
    counts = DerivedCounts(pairs_from_thumbs=int(row[0]), thumbs_from_pairs=2 * int(n_pairs),
                           thumbed_answers=int(row[1]), tied_answers=int(row[2]),
                           answers_without_opposite=int(row[3]), pairs_from_ranks=int(from_ranks),
                           pairs_from_ratings=int(from_ratings))
    return counts, None if train is None else Pairable(prompts=int(row[4]), pairs=int(row[5]))
