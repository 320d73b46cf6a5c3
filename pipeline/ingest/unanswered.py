"""Source rows that wait for feedback which may never come (a Langfuse trace nobody scored).

They wait in the `pending` table like feedback waiting for its generation, and past
`ingest.pending_timeout` they go to quarantine ("trace without score after N days"), so every
landed row ends as canonical rows or in quarantine with a reason. A score that arrives later takes
the row back out of quarantine and is used as usual.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb

from alignloop.config import IngestSettings
from alignloop.sqlfiles import sql_text


def track_unanswered(con: duckdb.DuckDBPyConnection, shape: Any, source: str, batch_id: int, now: datetime,
                     settings: IngestSettings) -> int:
    """Bring `pending` and quarantine up to date with the shape's unanswered rows; return how many timed out."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE unanswered AS {sql_text(shape.unanswered_sql)}", {"source": source})
    try:
        inputs = [i.name for i in shape.inputs[:-1]]
        params = {"source": source, "inputs": inputs}
        # Answered since the last run: they wait no more, and leave quarantine if they had timed out.
        con.execute("DELETE FROM pending WHERE source = $source AND list_contains($inputs, input) AND (input, key) NOT IN "
                    "(SELECT (input, key) FROM unanswered)", params)
        con.execute("DELETE FROM quarantine WHERE source = $source AND list_contains($inputs, input) "
                    "AND event_id = md5(source || ':no-score:' || key) AND (input, key) NOT IN "
                    "(SELECT (input, key) FROM unanswered)", params)
        con.execute(
            "INSERT INTO pending SELECT $source, u.input, u.key, $now, 'pending: ' || u.waiting_for || ' yet' "
            "FROM unanswered AS u WHERE (u.input, u.key) NOT IN (SELECT (input, key) FROM pending WHERE source = $source) "
            "AND u.canonical_id NOT IN (SELECT event_id FROM quarantine WHERE source = $source)",
            {"source": source, "now": now})
        days = settings.pending_timeout / timedelta(days=1)
        before = con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        con.execute(
            "INSERT INTO quarantine BY NAME SELECT u.canonical_id AS event_id, $source AS source, "
            "u.waiting_for || ' after ' || $days || ' days' AS reason, u.payload, $batch_id AS batch_id, "
            "$now AS quarantined_at, u.input, u.key, u.ts "
            "FROM unanswered AS u JOIN pending AS p ON p.source = $source AND p.input = u.input AND p.key = u.key "
            "WHERE p.since < $cutoff", {"source": source, "days": f"{days:g}", "batch_id": batch_id, "now": now,
                                        "cutoff": now - settings.pending_timeout})
        timed_out = con.execute("SELECT count(*) FROM quarantine").fetchone()[0] - before
        con.execute("DELETE FROM pending WHERE source = $source AND list_contains($inputs, input) AND (input, key) IN "
                    "(SELECT (input, key) FROM quarantine WHERE source = $source AND list_contains($inputs, input))",
                    params)
    finally:
        con.execute("DROP TABLE IF EXISTS unanswered")
    return timed_out
