"""Helpers for connector tests: the demo-shaped tables as Arrow, and a store's contents without run stamps."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from alignloop.connectors.duckdb_file import DuckDBConnector, DuckDBSettings
from alignloop.config import SourceSettings
from alignloop.ingest.store import FeedbackStore

TABLES = ("generations", "feedback_events")


def warehouse_tables(warehouse: Path) -> dict[str, pa.Table]:
    """The warehouse's tables as Arrow, oldest first."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ts").to_arrow_table() for t in TABLES}
    finally:
        con.close()


def store_contents(store: FeedbackStore) -> dict[str, list[tuple]]:
    """Every landed, canonical and quarantined row and every cursor, without batch ids or wall-clock stamps."""
    queries = {
        "raw_events_generations": "SELECT * EXCLUDE (batch_id) FROM raw_events_generations ORDER BY ALL",
        "raw_events_feedback": "SELECT * EXCLUDE (batch_id) FROM raw_events_feedback ORDER BY ALL",
        "unpaired": "SELECT * EXCLUDE (batch_id, ingested_at) FROM unpaired ORDER BY event_id",
        "pairs": "SELECT * EXCLUDE (batch_id, ingested_at) FROM pairs ORDER BY event_id",
        "quarantine": "SELECT * EXCLUDE (batch_id, quarantined_at) FROM quarantine ORDER BY event_id",
        "cursors": "SELECT source, input, position FROM cursors ORDER BY ALL",
    }
    return {name: store.con.execute(sql).fetchall() for name, sql in queries.items()}


def ingest_from_warehouse(store: FeedbackStore, warehouse: Path, name: str = "prod",
                          salt_of: FeedbackStore | str | None = None):
    """Land a DuckDB warehouse through the duckdb connector: the reference the other connectors must match.
    `salt_of`: the store compared with (or its salt), whose user-id salt this store takes first, so that
    hashed user ids match."""
    if salt_of is not None:
        salt = salt_of if isinstance(salt_of, str) else salt_of.user_salt
        store.con.execute("UPDATE store_meta SET value = ? WHERE key = 'user_salt'", [salt])
    source = SourceSettings(name=name, connector="duckdb", options={"path": str(warehouse)})
    return store.ingest(source, DuckDBConnector(DuckDBSettings(path=warehouse)))
