"""How the ingest's bulk inserts run. `one_thread`: inserts into the store's own tables run on one DuckDB
thread, unless DuckDB has spilled to disk (`spilled`: the landing inserts then read their staged rows back
on every thread); everything else keeps them all. `joins_as_written`: joins keep the side the SQL puts on the right
as the hash table.

DuckDB scans rows written inside a transaction (the ingest's landed rows, its temporary tables) on
one thread. Inserting such rows with more threads only moves the compression of the new row groups
from the commit into the insert, with overhead, so the whole ingest is slower. Reading the source,
staging, classifying and measuring keep every thread, and so do canonical inserts whose rows were
judged before the transaction opened (FeedbackStore._prejudge): those read committed tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb


@contextmanager
def one_thread(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the statements inside on one DuckDB thread, then restore the thread count as it was."""
    threads = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
    if threads == 1:
        yield
        return
    con.execute("SET threads = 1")
    try:
        yield
    finally:
        con.execute(f"SET threads = {threads}")


def spilled(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether DuckDB keeps part of its data in temporary files: the memory limit was reached. Rows read back
    from them are read on every thread, whoever wrote them, so inserts from spilled staging tables are
    faster on every thread than on one."""
    return bool(con.execute("SELECT coalesce(sum(temporary_storage_bytes), 0) > 0 FROM duckdb_memory()").fetchone()[0])


# DuckDB's optimizers that reorder joins and pick each hash join's build side from estimated row counts.
JOIN_PLANNERS = ("join_order", "build_side_probe_side")


@contextmanager
def joins_as_written(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the statements inside with each join as the SQL writes it: the right side is the hash table.

    DuckDB builds the hash table on the side it estimates smaller. Rows staged in this run reach its
    estimates through filters it cannot see through (the kept rows of a staging table), so it took the
    generations, texts and all, for the small side of the `events` shape's joins, and held every text in a
    hash table instead of the narrow judged rows. Other optimizers still run."""
    before = con.execute("SELECT current_setting('disabled_optimizers')").fetchone()[0]
    have = [o.strip() for o in before.split(",") if o.strip()]
    disabled = have + [o for o in JOIN_PLANNERS if o not in have]
    con.execute("SET disabled_optimizers = ?", [",".join(disabled)])
    try:
        yield
    finally:
        con.execute("SET disabled_optimizers = ?", [before])
