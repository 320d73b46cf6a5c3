"""Canonical-row hygiene after a shape has judged a batch: pending feedback and its timeout,
duplicates (exact and after case/whitespace normalisation), and the per-user cap. Rows removed
here go to quarantine with their reason; nothing is dropped silently.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb

from alignloop.config import IngestSettings
from alignloop.sqlfiles import sql_text

CANONICAL = ("unpaired", "pairs")
# Normalised text for duplicate detection: case and runs of whitespace do not make a row new. Only
# runs and non-space whitespace are replaced (replacing every single space rewrites every text). The ends
# are trimmed of Unicode space separators (Zs) as DuckDB's trim() does; its right-hand half, rtrim(), reads
# the whole string, so the trailing run is cut with one anchored regular expression instead (the same
# text as trim() gives, tests/unit/test_pii_dedup.py).
_NORM = "lower(ltrim(regexp_replace(regexp_replace({x}, '\\s{{2,}}|[\\t\\n\\r\\f\\v]', ' ', 'g'), '\\p{{Zs}}+$', '')))"
# Each canonical table: the normalised columns (computed once), then the key built from them.
NORMALISED = {
    "unpaired": ("n_prompt, n_completion", f"{_NORM.format(x='to_json(prompt)::VARCHAR')} AS n_prompt, "
                 f"{_NORM.format(x='completion')} AS n_completion"),
    "pairs": ("n_prompt, n_chosen, n_rejected", f"{_NORM.format(x='to_json(prompt)::VARCHAR')} AS n_prompt, "
              f"{_NORM.format(x='chosen')} AS n_chosen, {_NORM.format(x='rejected')} AS n_rejected"),
}
KEYS = {
    "unpaired": ("md5(coalesce(user_id, '') || chr(31) || n_prompt || chr(31) || n_completion || chr(31) "
                 "|| label::VARCHAR) AS dup_key"),
    "pairs": ("md5(coalesce(user_id, '') || chr(31) || n_prompt || chr(31) || n_chosen || chr(31) "
              "|| n_rejected) AS dup_key"),
}
# The item a row judges (one prompt and answer; one prompt and answer pair, whichever won), for counting
# contradictions. Computed when they are counted (`alignloop quarantine`), not stored: hashing every row's
# texts again at ingest cost more than the rare count does.
ITEM_KEYS = {
    "unpaired": "md5(n_prompt || chr(31) || n_completion)",
    "pairs": "md5(n_prompt || chr(31) || least(n_chosen, n_rejected) || chr(31) || greatest(n_chosen, n_rejected))",
}


def item_judgements(table: str) -> str:
    """(source, item_key, judgement) per row of a canonical table: the judgement is the label of a thumb,
    the chosen answer of a pair (a constant table name, never a setting)."""
    judgement = {"unpaired": "label", "pairs": "chosen"}[table]
    _, normalised = NORMALISED[table]
    return (f"SELECT source, {ITEM_KEYS[table]} AS item_key, {judgement} AS judgement "
            f"FROM (SELECT source, {judgement}, {normalised} FROM {table})")



def quarantine_rows(con: duckdb.DuckDBPyConnection, select_sql: str, batch_id: int, now: datetime, source: str) -> int:
    """Insert (event_id, source, reason, payload, input, key, ts) rows not quarantined yet; count them."""
    before = con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    con.execute(
        f"INSERT INTO quarantine BY NAME SELECT *, $batch_id AS batch_id, $now AS quarantined_at FROM ({select_sql}) "
        "WHERE event_id NOT IN (SELECT event_id FROM quarantine WHERE source = $source)",
        {"batch_id": batch_id, "now": now, "source": source},
    )
    return con.execute("SELECT count(*) FROM quarantine").fetchone()[0] - before


def track_pending(con: duckdb.DuckDBPyConnection, shape: Any, classified: str, source: str, batch_id: int, now: datetime,
                   settings: IngestSettings) -> tuple[int, int]:
    """Remember feedback still waiting for its generation (a score for its Langfuse trace); quarantine
    what waited past the timeout. Only shapes with a `pending_input` have rows that wait."""
    inp = shape.input(shape.pending_input)
    key = f'"{inp.key}"'
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE still_pending AS "
        f"SELECT c.{key} AS key, c.canonical_id, coalesce(p.since, $now) AS since, c.problem AS reason, "
        f"to_json(c) AS payload FROM {classified} AS c "
        f"LEFT JOIN pending AS p ON p.source = $source AND p.input = $input AND p.key = c.{key} "
        "WHERE starts_with(c.problem, 'pending:')",
        {"now": now, "source": source, "input": inp.name},
    )
    con.execute(f"DELETE FROM pending WHERE source = $source AND input = $input AND key IN "
                f"(SELECT {key} FROM {classified})", {"source": source, "input": inp.name})
    days = settings.pending_timeout / timedelta(days=1)
    timed_out = timeout_pending(con, source, inp.name, batch_id, now, now - settings.pending_timeout,
                                      f"no {shape.awaits} after {days:g} days")
    con.execute(
        "INSERT INTO pending SELECT $source, $input, key, since, reason FROM still_pending "
        "WHERE canonical_id NOT IN (SELECT event_id FROM quarantine WHERE source = $source)",
        {"source": source, "input": inp.name},
    )
    n = con.execute("SELECT count(*) FROM pending WHERE source = ?", [source]).fetchone()[0]
    con.execute("DROP TABLE still_pending")
    return n, timed_out


def timeout_pending(con: duckdb.DuckDBPyConnection, source: str, input_name: str, batch_id: int, now: datetime,
                    cutoff: datetime, reason: str) -> int:
    before = con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    con.execute(
        "INSERT INTO quarantine BY NAME SELECT canonical_id AS event_id, $source AS source, $reason AS reason, "
        "payload, $batch_id AS batch_id, $now AS quarantined_at, $input AS input, key "
        "FROM still_pending WHERE since < $cutoff "
        "AND canonical_id NOT IN (SELECT event_id FROM quarantine WHERE source = $source)",
        {"source": source, "reason": reason, "batch_id": batch_id, "now": now, "input": input_name,
         "cutoff": cutoff},
    )
    return con.execute("SELECT count(*) FROM quarantine").fetchone()[0] - before


def move_to_quarantine(con: duckdb.DuckDBPyConnection, table: str, ids_sql: str, reason_sql: str, params: dict[str, Any],
                        batch_id: int, now: datetime) -> int:
    """Move canonical rows (selected by `ids_sql`: event_id, reason columns) to quarantine."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE moving AS {ids_sql}", params)
    n = con.execute("SELECT count(*) FROM moving").fetchone()[0]
    if n:
        con.execute(
            f"INSERT INTO quarantine BY NAME SELECT t.event_id, t.source, {reason_sql} AS reason, "
            "to_json(t) AS payload, $batch_id AS batch_id, $now AS quarantined_at, t.ts "
            # only this batch's rows move (as the DELETE below): the filter skips older row groups unread
            f"FROM {table} AS t JOIN moving AS m ON m.event_id = t.event_id WHERE t.batch_id = $batch_id",
            {"batch_id": batch_id, "now": now},
        )
        con.execute(f"DELETE FROM {table} WHERE batch_id = ? AND event_id IN (SELECT event_id FROM moving)",
                    [batch_id])
    con.execute("DROP TABLE moving")
    return n


def remove_duplicates(con: duckdb.DuckDBPyConnection, batch_id: int, now: datetime) -> dict[str, int]:
    removed = {}
    for table in CANONICAL:
        removed[table] = move_to_quarantine(con,
            table, sql_text("store/canonical_duplicates.sql").replace("__TABLE__", table),
            "'duplicate of an earlier row (same user, prompt, answers and label after case/whitespace "
            "normalisation)'", {"batch_id": batch_id}, batch_id, now)
    return removed


def apply_user_cap(con: duckdb.DuckDBPyConnection, batch_id: int, now: datetime, cap: int | None) -> dict[str, int]:
    if cap is None:
        return dict.fromkeys(CANONICAL, 0)
    con.execute(f"CREATE OR REPLACE TEMP TABLE over_cap AS {sql_text('store/canonical_user_cap.sql')}",
                     {"batch_id": batch_id, "cap": cap})
    capped = {}
    for table in CANONICAL:
        capped[table] = move_to_quarantine(con,
            table, f"SELECT event_id FROM over_cap WHERE tbl = '{table}'",
            f"'user over ingest.max_rows_per_user ({cap} rows)'", {}, batch_id, now)
    con.execute("DROP TABLE over_cap")
    return capped


def supersede(con: duckdb.DuckDBPyConnection, table: str, where_sql: str, params: dict[str, Any],
              batch_id: int) -> None:
    """Remove the canonical rows of `table` (unpaired, pairs or ranks) that `where_sql` selects, keeping those of
    earlier batches in superseded_<table> with the batch that replaced them: a snapshot taken before
    this batch still reads them (see store/snapshot_rows.sql)."""
    con.execute(f"INSERT INTO superseded_{table} BY NAME SELECT *, $superseded_batch AS superseded_batch "
                f"FROM {table} WHERE ({where_sql}) AND batch_id < $superseded_batch",
                {**params, "superseded_batch": batch_id})
    con.execute(f"DELETE FROM {table} WHERE {where_sql}", params)


def forget_derived(con: duckdb.DuckDBPyConnection, classified: str, source: str, keys: tuple[str, ...],
                   batch_id: int) -> None:
    """Shapes whose rows pair two source rows (trees, ratings) name them a_id and b_id: what a replaced
    row took part in is judged afresh too (its canonical rows superseded, its quarantined rows dropped). So
    are the stored ranks of its group (what its siblings compare with may have changed) and of the group it
    heads; they are superseded too, so an earlier snapshot still derives the pairs it derived."""
    supersede(con, "ranks",
              "source = $source AND (answer_id IN (SELECT unnest($keys::VARCHAR[])) "
              "OR group_id IN (SELECT unnest($keys::VARCHAR[])) OR group_id IN (SELECT group_id FROM ranks "
              "WHERE source = $source AND answer_id IN (SELECT unnest($keys::VARCHAR[]))))",
              {"source": source, "keys": list(keys)}, batch_id)
    cols = {r[0] for r in con.execute(f"DESCRIBE {classified}").fetchall()}
    if not {"a_id", "b_id"} <= cols:
        return
    where = (f"source = $source AND event_id IN (SELECT event_id FROM {classified} "
             "WHERE a_id IN (SELECT unnest($keys::VARCHAR[])) OR b_id IN (SELECT unnest($keys::VARCHAR[])))")
    params = {"source": source, "keys": list(keys)}
    for table in CANONICAL:
        supersede(con, table, where, params, batch_id)
    con.execute(f"DELETE FROM quarantine WHERE {where}", params)


def dependents(con: duckdb.DuckDBPyConnection, shape: Any, source: str, keys: tuple[str, ...]) -> tuple[str, ...]:
    """Keys of the shape's last input resting on replaced rows of an earlier input (none without dependents_sql)."""
    if shape.dependents_sql is None:
        return ()
    con.execute("CREATE OR REPLACE TEMP TABLE replaced_keys AS SELECT unnest(?::VARCHAR[]) AS key", [list(keys)])
    found = tuple(k for (k,) in con.execute(sql_text(shape.dependents_sql), {"source": source}).fetchall())
    con.execute("DROP TABLE replaced_keys")
    return found
