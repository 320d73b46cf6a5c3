"""The feedback store: one DuckDB file holding landed source rows, canonical rows and their state.

Each ingest of a source is one transaction: its raw rows, the canonical rows shaped from them, the
quarantined rows and the advanced cursors commit together or not at all, so a re-run after a crash
or a re-run of the same window adds nothing twice. Snapshots freeze what a training run saw.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from connectors.base import Connector, ConnectorError, Window
from pipeline.errors import TerminalError, TransientError
from pipeline.schema import PAIRS_SCHEMA, UNPAIRED_SCHEMA
from pipeline.shapes import SHAPES, ResolvedInput, resolve_mapping, sql_params
from pipeline.sqlfiles import sql_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    source: str
    batch_id: int
    rows_read: dict[str, int]
    raw_added: dict[str, int]
    unpaired_added: int
    pairs_added: int
    quarantined: int
    pending: int
    cursors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    snapshot_id: str
    created_at: datetime
    high_water_batch: int
    n_unpaired: int
    n_pairs: int


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class FeedbackStore:
    """The store behind one DuckDB file. Use as a context manager, or call close()."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path))
        except duckdb.IOException as e:
            raise TransientError(f"feedback store {self.path}: cannot open ({e}); is another run using it?") from None
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(sql_text("store_schema.sql"))
        self.con.execute(sql_text("store_loaded_files.sql"))
        for shape in SHAPES.values():
            self.con.execute(sql_text(shape.raw_tables_sql))

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    # ------------------------------------------------------------------ ingest
    def cursor_position(self, source: str, input_name: str) -> datetime | None:
        row = self.con.execute(
            "SELECT position FROM cursors WHERE source = ? AND input = ?", [source, input_name]
        ).fetchone()
        return row[0] if row else None

    def loaded_files(self, source: str, input_name: str) -> frozenset[tuple[str, str]]:
        """(path, content hash) of the files already landed for one input of a file source."""
        rows = self.con.execute(
            "SELECT file, file_hash FROM loaded_files WHERE source = ? AND input = ?", [source, input_name]
        ).fetchall()
        return frozenset((f, h) for f, h in rows)

    def ingest(self, source: Any, connector: Connector, *, lookback: timedelta = timedelta(0)) -> IngestResult:
        """Read what is new in `source` (a SourceSettings) through `connector` and merge it, atomically.

        Each input is read from its cursor (minus `lookback`, for late rows) onwards; rows already
        landed are skipped by key, so overlapping windows are harmless.
        """
        where = f"source {source.name!r}"
        inputs = resolve_mapping(source.shape, source.mapping, f"sources[{source.name}]",
                                 getattr(source, "shape_options", None))
        shape = SHAPES[source.shape]
        started = _utcnow()
        con = self.con
        con.begin()
        try:
            batch_id = con.execute("SELECT nextval('batch_ids')").fetchone()[0]
            rows_read: dict[str, int] = {}
            raw_added: dict[str, int] = {}
            cursors: dict[str, str] = {}
            for inp in inputs:
                n_read, high = self._land(source.name, inp, connector, batch_id, lookback, where)
                rows_read[inp.spec.name] = n_read
                raw_added[inp.spec.name] = con.execute(
                    f"SELECT count(*) FROM {inp.spec.raw_table} WHERE source = ? AND batch_id = ?",
                    [source.name, batch_id],
                ).fetchone()[0]
                if high is not None:
                    con.execute(
                        "INSERT OR REPLACE INTO cursors VALUES (?, ?, ?, ?, ?)",
                        [source.name, inp.spec.name, high, batch_id, _utcnow()],
                    )
                position = self.cursor_position(source.name, inp.spec.name)
                cursors[inp.spec.name] = position.isoformat() if position else ""
            counts = self._shape(shape, source.name, batch_id, sql_params(source))
            con.execute(
                "INSERT INTO ingest_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [batch_id, source.name, started, _utcnow(), sum(rows_read.values()), sum(raw_added.values()),
                 counts["unpaired"], counts["pairs"], counts["quarantined"], counts["pending"]],
            )
            con.commit()
        except BaseException:
            con.rollback()
            raise
        result = IngestResult(
            source=source.name, batch_id=batch_id, rows_read=rows_read, raw_added=raw_added,
            unpaired_added=counts["unpaired"], pairs_added=counts["pairs"],
            quarantined=counts["quarantined"], pending=counts["pending"], cursors=cursors,
        )
        log.info("ingested %s: %s", source.name, result)
        return result

    def _land(
        self, source: str, inp: ResolvedInput, connector: Connector, batch_id: int, lookback: timedelta, where: str
    ) -> tuple[int, datetime | None]:
        """Copy one input's new rows into its landing table; return (rows read, largest cursor value)."""
        position = self.cursor_position(source, inp.spec.name)
        # File sources are incremental by file: whole files not yet landed are read, whatever their cursor values.
        by_file = getattr(connector, "incremental", None) == "files"
        window = Window(
            table=inp.table,
            cursor_column=inp.cursor_column,
            start=None if position is None or by_file or inp.cursor_column is None else position - lookback,
            columns=inp.read_columns,
            loaded_files=self.loaded_files(source, inp.spec.name) if by_file else None,
        )
        n_read, high = 0, None
        files: set[tuple[str, str]] = set()
        try:
            for batch in connector.read(window):
                if batch.num_rows == 0:
                    continue
                if by_file:
                    files.update(zip(batch.column("_file").to_pylist(), batch.column("_file_hash").to_pylist(), strict=True))
                n_read += batch.num_rows
                batch = inp.to_canonical(batch)  # the shape's per-batch step: mapping, parsing, keys
                batch_high = inp.cursor_high(batch)
                if batch_high is not None:
                    batch_high = _naive_utc(batch_high)
                    high = batch_high if high is None or batch_high > high else high
                self.con.register("landing_batch", batch)
                try:
                    self.con.execute(
                        f"INSERT OR IGNORE INTO {inp.spec.raw_table} BY NAME "
                        "SELECT ? AS source, ? AS batch_id, * FROM landing_batch",
                        [source, batch_id],
                    )
                finally:
                    self.con.unregister("landing_batch")
            if files:
                self.con.executemany(
                    "INSERT OR IGNORE INTO loaded_files VALUES (?, ?, ?, ?, ?, ?)",
                    [[source, inp.spec.name, f, h, batch_id, _utcnow()] for f, h in sorted(files)],
                )
        except ConnectorError as e:
            kind = TransientError if e.transient else TerminalError
            raise kind(f"{where}, input {inp.spec.name} (table {inp.table}): {e}") from None
        except KeyError as e:
            raise TerminalError(
                f"{where}, input {inp.spec.name}: the connector returned no column {e}; "
                f"check mapping.{inp.spec.name} in the config"
            ) from None
        except (duckdb.ConversionException, duckdb.ConstraintException, duckdb.InvalidInputException) as e:
            raise TerminalError(
                f"{where}, input {inp.spec.name} (table {inp.table}): rows do not fit the "
                f"{inp.spec.name} columns ({str(e).splitlines()[0]}); check the column types and mapping"
            ) from None
        return n_read, high

    def _shape(self, shape: Any, source: str, batch_id: int, params: dict[str, Any] | None = None) -> dict[str, int]:
        """Turn landed rows not yet judged into canonical rows or quarantine; count each outcome."""
        con = self.con
        classified = f"{shape.name}_classified"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {classified} AS {sql_text(shape.classify_sql)}",
                    params or {"source": source})
        try:
            now = _utcnow()
            counts = {}
            for table, sql in (("unpaired", shape.unpaired_sql), ("pairs", shape.pairs_sql),
                               ("quarantine", shape.quarantine_sql)):
                stamp = "quarantined_at" if table == "quarantine" else "ingested_at"
                before = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                con.execute(
                    f"INSERT OR IGNORE INTO {table} BY NAME "
                    f"SELECT *, ? AS batch_id, ? AS {stamp} FROM ({sql_text(sql)})",
                    [batch_id, now],
                )
                counts[table] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] - before
            counts["quarantined"] = counts.pop("quarantine")
            counts["pending"] = con.execute(
                f"SELECT count(*) FROM {classified} WHERE starts_with(problem, 'pending:')"
            ).fetchone()[0]
        finally:
            con.execute(f"DROP TABLE IF EXISTS {classified}")
        return counts

    # ------------------------------------------------------------------ reading
    def counts(self) -> dict[str, int]:
        return {
            t: self.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("unpaired", "pairs", "quarantine", "raw_events_generations", "raw_events_feedback")
        }

    def quarantine_reasons(self) -> list[tuple[str, int]]:
        return self.con.execute(
            "SELECT reason, count(*) AS n FROM quarantine GROUP BY reason ORDER BY n DESC, reason"
        ).fetchall()

    def snapshot(self) -> Snapshot:
        """Freeze the canonical rows as they are now. The id is a hash of their event ids, so the
        same content always gets the same id."""
        con = self.con
        high = con.execute("SELECT coalesce(max(batch_id), 0) FROM ingest_log").fetchone()[0]
        snapshot_id, n_unpaired, n_pairs = con.execute(
            """
            SELECT md5(coalesce(string_agg(event_id, ',' ORDER BY event_id), '')),
                   count(*) FILTER (WHERE kind = 'unpaired'), count(*) FILTER (WHERE kind = 'pairs')
            FROM (SELECT event_id, 'unpaired' AS kind FROM unpaired WHERE batch_id <= $high
                  UNION ALL SELECT event_id, 'pairs' FROM pairs WHERE batch_id <= $high)
            """,
            {"high": high},
        ).fetchone()
        con.execute(
            "INSERT OR IGNORE INTO snapshots VALUES (?, ?, ?, ?, ?)",
            [snapshot_id, _utcnow(), high, n_unpaired, n_pairs],
        )
        return self.get_snapshot(snapshot_id)

    def get_snapshot(self, snapshot_id: str) -> Snapshot:
        row = self.con.execute("SELECT * FROM snapshots WHERE snapshot_id = ?", [snapshot_id]).fetchone()
        if row is None:
            raise TerminalError(f"snapshot {snapshot_id} is not in the store {self.path}; run `alignloop ingest` first")
        return Snapshot(*row)

    def read_snapshot(self, snapshot: Snapshot) -> tuple[pa.Table, pa.Table]:
        """The snapshot's (unpaired, pairs) rows in their canonical schemas, oldest first."""
        tables = []
        for table, schema in (("unpaired", UNPAIRED_SCHEMA), ("pairs", PAIRS_SCHEMA)):
            cols = ", ".join(schema.names)
            arrow = self.con.execute(
                f"SELECT {cols} FROM {table} WHERE batch_id <= ? ORDER BY ts, event_id", [snapshot.high_water_batch]
            ).to_arrow_table()
            tables.append(arrow.cast(schema))
        return tables[0], tables[1]

    def source_cursors(self) -> dict[str, str]:
        rows = self.con.execute("SELECT source, input, position FROM cursors ORDER BY source, input").fetchall()
        return {f"{s}.{i}": p.isoformat() for s, i, p in rows}


def _naive_utc(value: Any) -> datetime:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value
