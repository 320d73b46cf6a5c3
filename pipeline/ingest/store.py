"""The feedback store: one DuckDB file holding landed source rows, canonical rows and their state.

Each ingest of a source is one transaction: its landed rows, the canonical rows shaped from them, the
quarantined rows and the advanced cursors commit together or not at all, so a re-run after a crash
or a re-run of the same window adds nothing twice. What changes nothing stored happens before the
transaction opens, in temporary tables that DuckDB scans on every thread: reading and checking each
input's window and, when the read replaces no stored version, judging the rows it lands. Such a read's
canonical rows are then the transaction's first writes, built from committed tables alone.
Snapshots freeze what a training run saw.
What keeps each load trustworthy (late rows, future rows, bad rows, duplicates, PII) is in
pipeline/ingest/ and docs/loading.md.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from alignloop.connectors.base import Connector
from alignloop.config import IngestSettings
from alignloop.conversions import with_pairs_from_ranks
from alignloop.errors import ConfigError, DataError, TerminalError, TransientError
from alignloop.ingest import canonical
from alignloop.ingest.cursors import INTEGER, TEXT, CursorPosition, parse_iso
from alignloop.ingest.landing import Landing, LandedInput, Staged, fixed_in_quarantine, merge, stage
from alignloop.ingest.sqlbind import bind
from alignloop.ingest.unanswered import track_unanswered
from alignloop.ingest.writes import joins_as_written, one_thread
from alignloop.memory import bound_allocator_retention
from alignloop.pii import register_scrub_udfs
from alignloop.schema import PAIRS_SCHEMA, RANKS_SCHEMA, UNPAIRED_SCHEMA
from alignloop.shapes import SHAPES, ResolvedInput, resolve_mapping, sql_params
from alignloop.sqlfiles import sql_text

log = logging.getLogger(__name__)

# The layout of the store's tables. Bump it when a canonical table changes: a store of another layout
# is refused with the fix, never half-read. 2: canonical rows carry ts_observed; rankings are stored
# as ranks (their pairs are derived when a snapshot is read). 3: rated answers are stored with their
# scores in ranks (their pairs too are derived when read, not stored as pairs).
LAYOUT = "3"
# The landing keys of every shape's inputs, as quarantined payloads hold them.
ROW_KEYS = tuple(sorted({i.key for s in SHAPES.values() for i in s.inputs}))

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
    duplicates: int = 0      # rows already stored, or repeating a stored row (re-reads, look-back, double clicks)
    conflicts: int = 0       # differing versions of one key recorded in the `conflicts` table
    replaced: int = 0        # stored or quarantined versions replaced by a newer version
    ranks_added: int = 0     # ranked answers stored (their pairs are derived when a snapshot is read)
    ties_added: int = 0      # votes that preferred neither answer, stored as observed (never read as pairs)


@dataclass(frozen=True)
class Snapshot:
    snapshot_id: str
    created_at: datetime
    high_water_batch: int
    n_unpaired: int
    n_pairs: int


@dataclass(frozen=True)
class SnapshotSplit:
    """A snapshot's rows split by prompt hash in DuckDB, as Arrow tables in the canonical schemas."""
    train_unpaired: pa.Table
    train_pairs: pa.Table
    holdout_unpaired: pa.Table
    holdout_pairs: pa.Table


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def check_store_is_not_a_source(store_path: Path, sources: Any) -> None:
    """Refuse a store that is one of the files a source reads: ingest would write into its own input."""
    target = Path(store_path).resolve()
    for source in sources:
        for key in ("path", "paths"):
            value = source.options.get(key)
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, str) and "://" not in item and Path(item).resolve() == target:
                    raise ConfigError(
                        f"store: {target} is the file sources[{source.name}].options.{key} reads; "
                        "point store at a separate file (default <workdir>/feedback.duckdb)"
                    )


def _checked_inputs(source: Any) -> list[ResolvedInput]:
    """The source's inputs resolved against its shape; its `cursor` settings checked against them."""
    inputs = resolve_mapping(source.shape, source.mapping, f"sources[{source.name}]",
                             getattr(source, "shape_options", None))
    for name in dict(getattr(source, "cursor", {}) or {}):
        if name not in {i.spec.name for i in inputs}:
            raise ConfigError(f"sources[{source.name}].cursor.{name}: the {source.shape!r} shape has no input "
                              f"{name!r} (inputs: {', '.join(i.spec.name for i in inputs)})")
        if inputs[0].prepare is not None:  # its rows' times are what the shape parses from the mapped column
            raise ConfigError(f"sources[{source.name}].cursor.{name}: the {source.shape!r} shape reads by the "
                              f"column mapped as its time; map it under mapping.{name} instead")
    return inputs


class FeedbackStore:
    """The store behind one DuckDB file. Use as a context manager, or call close()."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path))
        except duckdb.IOException as e:
            raise TransientError(f"feedback store {self.path}: cannot open ({e}); is another run using it?") from None
        # Every timestamp the store writes or compares is UTC, whatever the machine's zone.
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("SET enable_progress_bar = false")
        # Strings are compressed with FSST, not dictionaries: the store's string columns (ids, keys, texts)
        # rarely repeat, so trying dictionaries on each costs commit time and saves little space.
        self.con.execute("SET disabled_compression_methods = 'dictionary'")
        self._refuse_old_layout()
        self.con.execute(sql_text("store_schema.sql"))
        self.con.execute(sql_text("store_loaded_files.sql"))
        self.con.execute(sql_text("holdout_macros.sql"))
        self.con.execute(sql_text("store_macros.sql"))
        for shape in SHAPES.values():
            self.con.execute(sql_text(shape.raw_tables_sql))
        self.con.execute("INSERT OR IGNORE INTO store_meta VALUES ('user_salt', ?)", [secrets.token_hex(16)])
        self.con.execute("INSERT OR IGNORE INTO store_meta VALUES ('layout', ?)", [LAYOUT])
        register_scrub_udfs(self.con)

    def _refuse_old_layout(self) -> None:
        """Stores of another layout (timestamp-only cursors, canonical rows without ts_observed, rankings
        stored as pairs) cannot be read safely: say so."""
        con = self.con
        why = None
        if con.execute("SELECT count(*) FROM duckdb_columns() WHERE table_name = 'cursors' AND column_name = 'position' "
                       "AND data_type = 'TIMESTAMP'").fetchone()[0]:
            why = "timestamp-only cursors"
        elif con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'unpaired'").fetchone()[0]:
            has_meta = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'store_meta'").fetchone()[0]
            row = con.execute("SELECT value FROM store_meta WHERE key = 'layout'").fetchone() if has_meta else None
            if row is None or row[0] != LAYOUT:
                why = f"store layout {row[0] if row else 1}, this version reads layout {LAYOUT}"
        if why:
            con.close()
            raise TerminalError(
                f"feedback store {self.path} was written by an earlier alignloop ({why}); "
                "move it aside and run `alignloop ingest` again: the sources are re-read from the start"
            )

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    @property
    def user_salt(self) -> str:
        """The per-installation salt user ids are hashed with (created once, kept in the store)."""
        return self.con.execute("SELECT value FROM store_meta WHERE key = 'user_salt'").fetchone()[0]

    def loaded_files(self, source: str, input_name: str) -> frozenset[tuple[str, str]]:
        """(path, content hash) of the files already landed for one input of a file source."""
        rows = self.con.execute(
            "SELECT file, file_hash FROM loaded_files WHERE source = ? AND input = ?", [source, input_name]
        ).fetchall()
        return frozenset((f, h) for f, h in rows)

    # ------------------------------------------------------------------ ingest
    def cursor_position(self, source: str, input_name: str) -> CursorPosition | None:
        row = self.con.execute(
            "SELECT position, kind FROM cursors WHERE source = ? AND input = ?", [source, input_name]
        ).fetchone()
        return CursorPosition(*row) if row else None

    def ingest(self, source: Any, connector: Connector, *, lookback: timedelta | None = None,
               settings: IngestSettings | None = None, now: datetime | None = None) -> IngestResult:
        """Read what is new in `source` (a SourceSettings) through `connector` and merge it, atomically.

        Each input is read from its cursor minus the look-back (late rows), capped at now plus the
        future skew; rows already landed are skipped by key and content, bad rows are quarantined.
        """
        settings = settings or IngestSettings()
        bound_allocator_retention()
        if lookback is not None:
            settings = settings.model_copy(update={"lookback": lookback})
        now = now or _utcnow()
        inputs = _checked_inputs(source)
        shape = SHAPES[source.shape]
        started = _utcnow()
        self._use_ingest_settings(settings)
        jobs = self._landing_jobs(source, connector, inputs, now, settings)
        # Every input's window is read, checked and decided before the transaction opens (landing.stage);
        # where that changes nothing stored, the landed rows are judged before it too (_prejudge), and their
        # canonical rows are inserted before the landed rows, reading the stored and staged rows as views.
        staged: list[Staged | None] = []
        prejudged = False
        try:
            for n, job in enumerate(jobs):
                staged.append(stage(self.con, job, connector, f"land_stage_{n}"))
            batch_id = self.con.execute("SELECT nextval('batch_ids')").fetchone()[0]
            prejudged = self._prejudge(shape, source, staged, batch_id)
            landed, counts, quarantined = self._merge_batch(shape, source, jobs, staged, batch_id, now, settings,
                                                            started, prejudged)
        finally:
            self._drop_staged(shape, staged, prejudged)
        result = self._result(source, inputs, batch_id, landed, counts, quarantined)
        log.info("ingested %s: %s", source.name, result)
        return result

    def _use_ingest_settings(self, settings: IngestSettings) -> None:
        if settings.threads:
            self.con.execute(f"SET threads = {int(settings.threads)}")
        if settings.memory_limit:
            self.con.execute("SET memory_limit = ?", [settings.memory_limit])

    def _landing_jobs(self, source: Any, connector: Connector, inputs: list[ResolvedInput], now: datetime,
                      settings: IngestSettings) -> list[Landing]:
        """What to read of each input: its cursor column and stored position, or the files already landed."""
        cursor_cols = dict(getattr(source, "cursor", {}) or {})
        # File sources are incremental by file: files not yet landed are read whole, whatever their times.
        by_file = getattr(connector, "incremental", None) == "files"
        salt = self.user_salt
        return [Landing(
            source=source.name, inp=inp, now=now, settings=settings, salt=salt,
            cursor_column=cursor_cols.get(inp.spec.name, inp.cursor_column),
            cursor_setting=(f"sources[{source.name}].cursor.{inp.spec.name}" if inp.spec.name in cursor_cols else
                            f"sources[{source.name}].mapping.{inp.spec.name}.{inp.spec.cursor} (the cursor column)"),
            position=self.cursor_position(source.name, inp.spec.name),
            loaded_files=self.loaded_files(source.name, inp.spec.name) if by_file else None,
        ) for inp in inputs]

    def _merge_batch(self, shape: Any, source: Any, jobs: list[Landing], staged: list[Staged | None], batch_id: int,
                     now: datetime, settings: IngestSettings, started: datetime,
                     prejudged: bool) -> tuple[dict[str, LandedInput], dict[str, int], int]:
        """The one transaction of a read: the canonical rows judged before it, the landed rows with their
        cursors and files, the shape's judgement of the rest, the bad-share check and the ingest log line.
        Returns what landed per input, the shape's counts and the rows quarantined."""
        con = self.con
        con.begin()
        try:
            inserted = None
            if prejudged:  # before the landed rows: the canonical rows then read committed tables only
                with self._staged_views(source, staged, batch_id):
                    inserted = self._insert_canonical(shape, source.name, batch_id, now, prejudged=True)
            landed, replaced = self._land(shape, source.name, jobs, staged, batch_id, now)
            if inserted is not None or any(r.added or r.replaced for r in landed.values()) or con.execute(
                    "SELECT count(*) FROM pending WHERE source = ?", [source.name]).fetchone()[0]:
                counts = self._apply_shape(shape, source, batch_id, now, settings, replaced, inserted)
            else:  # nothing landed and nothing waiting (in any shape): nothing to judge
                counts = dict.fromkeys(("unpaired", "pairs", "ranks", "ties", "judged_bad", "pending",
                                        "duplicates", "quarantined"), 0)
            quarantined = self._check_and_log(shape, source.name, batch_id, started, settings, landed, counts)
            con.commit()
        except BaseException:
            # A commit that failed (a full disk) has ended the transaction already: its error is the one to see.
            with suppress(duckdb.Error):
                con.rollback()
            raise
        return landed, counts, quarantined

    def _land(self, shape: Any, source: str, jobs: list[Landing], staged: list[Staged | None], batch_id: int,
              now: datetime) -> tuple[dict[str, LandedInput], tuple[str, ...]]:
        """Merge each input's staged rows, move its cursor, record its files, and set aside what rested on
        replaced rows. Returns what landed per input and the keys replaced in the shape's last input."""
        con = self.con
        landed: dict[str, LandedInput] = {}
        replaced: tuple[str, ...] = ()
        for job, staged_input in zip(jobs, staged, strict=True):
            spec = job.inp.spec
            landed[spec.name] = result = (
                LandedInput(0, 0, 0, 0, 0, 0, None) if staged_input is None
                else merge(con, staged_input, batch_id))
            if result.position is not None:
                self._advance(source, spec.name, job.position, result.position, batch_id)
            if result.files:
                con.executemany("INSERT OR IGNORE INTO loaded_files VALUES (?, ?, ?, ?, ?, ?)",
                                [[source, spec.name, f, h, batch_id, _utcnow()] for f, h in sorted(result.files)])
            if result.replaced_keys and spec is shape.inputs[-1]:
                replaced = result.replaced_keys
                self._forget_canonical(source, replaced, batch_id)
            elif result.replaced_keys:
                self._rejudge_dependents(shape, source, result.replaced_keys, now, batch_id)
        return landed, replaced

    def _check_and_log(self, shape: Any, source: str, batch_id: int, started: datetime, settings: IngestSettings,
                       landed: dict[str, LandedInput], counts: dict[str, int]) -> int:
        """Refuse a read with too many bad rows; otherwise write its ingest log line. Returns the rows quarantined."""
        landed_bad = sum(r.quarantined for r in landed.values())
        # What counts as bad: rows failing the landing checks, plus rows the shape found malformed.
        # A prepared shape marks those as they land; what its SQL leaves unused besides (a tree
        # message without a rank or vote, a rating between the thresholds) is no sign of bad data.
        judged_bad = counts["judged_bad"] if shape.prepare is None else sum(r.shape_bad for r in landed.values())
        new_rows = sum(r.added + r.quarantined for r in landed.values())
        self._check_bad_share(source, batch_id, landed_bad + judged_bad, new_rows, settings)
        quarantined = landed_bad + counts["quarantined"]
        self.con.execute(
            "INSERT INTO ingest_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [batch_id, source, started, _utcnow(), sum(r.rows_read for r in landed.values()),
             sum(r.added for r in landed.values()), counts["unpaired"], counts["pairs"], quarantined,
             counts["pending"], counts["ranks"]],
        )
        return quarantined

    def _drop_staged(self, shape: Any, staged: list[Staged | None], prejudged: bool) -> None:
        if prejudged:  # _apply_shape drops it once it ran; not when the transaction failed before
            self.con.execute(f"DROP TABLE IF EXISTS {shape.name}_classified")
        for staged_input in staged:
            if staged_input is not None:
                self.con.execute(f"DROP TABLE IF EXISTS {staged_input.table}")
                self.con.execute(f"DROP TABLE IF EXISTS {staged_input.decided}")

    def _result(self, source: Any, inputs: list[ResolvedInput], batch_id: int, landed: dict[str, LandedInput],
                counts: dict[str, int], quarantined: int) -> IngestResult:
        cursors = {}
        for inp in inputs:
            position = self.cursor_position(source.name, inp.spec.name)
            cursors[inp.spec.name] = position.value if position else ""
        return IngestResult(
            source=source.name, batch_id=batch_id, rows_read={k: r.rows_read for k, r in landed.items()},
            raw_added={k: r.added for k, r in landed.items()},
            unpaired_added=counts["unpaired"], pairs_added=counts["pairs"], quarantined=quarantined,
            pending=counts["pending"], cursors=cursors,
            duplicates=sum(r.duplicates for r in landed.values()) + counts["duplicates"],
            conflicts=sum(r.conflicts for r in landed.values()),
            replaced=sum(r.replaced for r in landed.values()), ranks_added=counts["ranks"],
            ties_added=counts["ties"],
        )

    def _prejudge(self, shape: Any, src: Any, staged: list[Staged | None], batch_id: int) -> bool:
        """Judge the rows this read lands before the transaction opens, where landing them changes nothing
        stored (no replaced version, no quarantined version fixed) and the shape judges landed rows by batch
        (`events`): its SQL then reads the landing tables with the staged rows added (_staged_views).
        DuckDB scans what a transaction wrote on one thread only, so judging inside it left every other core
        idle. True: `<shape>_classified` is built."""
        con = self.con
        present = [s for s in staged if s is not None]
        if shape.prepare is not None or not present:
            return False
        if any(s.decisions.get("replace") or fixed_in_quarantine(con, s) for s in present):
            return False
        lands = any(con.execute(f"SELECT count(*) FROM ({s.kept})").fetchone()[0] for s in present)
        if not lands and not con.execute("SELECT count(*) FROM pending WHERE source = ?", [src.name]).fetchone()[0]:
            return False
        with self._staged_views(src, staged, batch_id):
            self._classify(shape, src, batch_id)
        return True

    @contextmanager
    def _staged_views(self, src: Any, staged: list[Staged | None], batch_id: int) -> Iterator[None]:
        """Temporary views named as the landing tables: their stored rows with the staged rows that land added,
        as the tables will hold them once merged. Statements run meanwhile read committed tables only, which
        DuckDB scans on every thread, and which carry the statistics its join planning needs."""
        con = self.con
        database = con.execute("SELECT current_database()").fetchone()[0].replace('"', '""')
        views = []
        try:
            for s in (s for s in staged if s is not None):
                table = s.job.inp.spec.raw_table
                views.append(table)
                con.execute(f'CREATE OR REPLACE TEMP VIEW {table} AS SELECT * FROM "{database}".main.{table} '
                            f"UNION ALL BY NAME {s.landed_rows(src.name, batch_id)}")
            yield
        finally:
            for table in views:
                con.execute(f"DROP VIEW IF EXISTS temp.main.{table}")

    def _advance(self, source: str, name: str, old: CursorPosition | None, new: CursorPosition, batch_id: int) -> None:
        """Move a cursor forward (never back: a look-back read may end below the stored position)."""
        if old is not None and old.kind == new.kind and _order(old) >= _order(new):
            return
        self.con.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?, ?, ?, ?, ?)",
                         [source, name, new.value, new.kind, batch_id, _utcnow()])

    def _forget_canonical(self, source: str, keys: tuple[str, ...], batch_id: int) -> None:
        """Rows fixed upstream: set aside what the old version became, so the new one is judged afresh.
        Its canonical rows are superseded, not deleted: earlier snapshots keep reading them. Canonical
        ids are md5(source:key) in every shape but trees and ratings pairs (see canonical.forget_derived)."""
        self.con.execute("CREATE OR REPLACE TEMP TABLE replaced_ids AS SELECT md5(? || ':' || k) AS event_id "
                         "FROM unnest(?::VARCHAR[]) AS t(k)", [source, list(keys)])
        where = "source = $source AND event_id IN (SELECT event_id FROM replaced_ids)"
        for table in (*canonical.CANONICAL, "ties"):
            canonical.supersede(self.con, table, where, {"source": source}, batch_id)
        self.con.execute(f"DELETE FROM quarantine WHERE {where}", {"source": source})
        self.con.execute("DROP TABLE replaced_ids")

    def _rejudge_dependents(self, shape: Any, source: str, keys: tuple[str, ...], now: datetime,
                            batch_id: int) -> None:
        """Rows fixed upstream in an earlier input (a generation, a Langfuse trace): what rests on them is
        judged again."""
        dependents = canonical.dependents(self.con, shape, source, keys)
        if not dependents:
            return
        self._forget_canonical(source, dependents, batch_id)
        last = shape.inputs[-1].name
        self.con.execute("DELETE FROM pending WHERE source = ? AND input = ? AND key IN (SELECT unnest(?::VARCHAR[]))",
                         [source, last, list(dependents)])
        self.con.execute("INSERT INTO pending SELECT ?, ?, unnest(?::VARCHAR[]), ?, ?",
                         [source, last, list(dependents), now, f"pending: its {shape.awaits} was replaced"])

    def _check_bad_share(self, source: str, batch_id: int, bad: int, total: int, settings: IngestSettings) -> None:
        if total == 0 or bad / total <= settings.max_bad_share:
            return
        # Each reason with one of its rows, by key (or the id its payload holds), so the row can be found.
        row_key = "coalesce(key, " + ", ".join(f"payload->>'{k}'" for k in ROW_KEYS) + ")"
        top = self.con.execute(
            f"SELECT reason, count(*) AS n, min({row_key}) FROM quarantine WHERE source = ? AND batch_id = ? "
            "GROUP BY reason ORDER BY n DESC, reason LIMIT 3", [source, batch_id]).fetchall()
        reasons = "; ".join(f"{n} × {reason}" + (f" (e.g. row {key})" if key else "") for reason, n, key in top)
        raise DataError(
            f"source {source!r}: {bad} of {total} new rows ({bad / total:.0%}) are bad, above "
            f"ingest.max_bad_share = {settings.max_bad_share:g}; nothing was merged ({reasons}). "
            "Fix the source, or raise ingest.max_bad_share to load the good rows and quarantine the rest"
        )

    def _classify(self, shape: Any, src: Any, batch_id: int) -> None:
        """Build `<shape>_classified`: the shape's judgement of the landed rows of batch `batch_id`."""
        sql = sql_text(shape.classify_sql)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {shape.name}_classified AS {sql}",
                         bind(sql, {**sql_params(src), "batch_id": batch_id}))

    def _apply_shape(self, shape: Any, src: Any, batch_id: int, now: datetime, settings: IngestSettings,
               replaced: tuple[str, ...] = (), inserted: dict[str, int] | None = None) -> dict[str, int]:
        """Turn landed rows not yet judged into canonical rows, pending rows or quarantine; count each.
        inserted: the rows were judged before the transaction (_prejudge built `<shape>_classified`) and their
        canonical rows are stored already, these many per table (_insert_canonical, before the landed rows)."""
        con = self.con
        source = src.name
        classified = f"{shape.name}_classified"
        if inserted is None:
            self._classify(shape, src, batch_id)
        try:
            if replaced:
                canonical.forget_derived(con, classified, source, replaced, batch_id)
            counts = dict(inserted) if inserted is not None else self._insert_canonical(shape, source, batch_id, now)
            counts["ranks"] = 0 if shape.ranks_sql is None else self._insert_observed("ranks", shape.ranks_sql, source,
                                                                                   batch_id, now)
            counts["ties"] = 0 if shape.ties_sql is None else self._insert_observed("ties", shape.ties_sql, source,
                                                                                 batch_id, now)
            counts["judged_bad"] = canonical.quarantine_rows(con,
                f"SELECT *, NULL AS input, NULL AS key, NULL::TIMESTAMP AS ts FROM ({sql_text(shape.quarantine_sql)})",
                batch_id, now, source)
            counts["pending"], timed_out = 0, 0
            if shape.pending_input is not None:  # only events and langfuse rows wait for rows of another input
                counts["pending"], timed_out = canonical.track_pending(con, shape, classified, source, batch_id, now,
                                                                       settings)
            if shape.unanswered_sql is not None:  # rows waiting for feedback (Langfuse traces without a score)
                timed_out += track_unanswered(con, shape, source, batch_id, now, settings)
                counts["pending"] = con.execute("SELECT count(*) FROM pending WHERE source = ?", [source]).fetchone()[0]
            duplicates = canonical.remove_duplicates(con, batch_id, now)
            capped = canonical.apply_user_cap(con, batch_id, now, settings.max_rows_per_user)
            counts["unpaired"] -= duplicates["unpaired"] + capped["unpaired"]
            counts["pairs"] -= duplicates["pairs"] + capped["pairs"]
            counts["duplicates"] = sum(duplicates.values())
            counts["quarantined"] = counts["judged_bad"] + timed_out + counts["duplicates"] + sum(capped.values())
        finally:
            con.execute(f"DROP TABLE IF EXISTS {classified}")
        return counts

    def _insert_canonical(self, shape: Any, source: str, batch_id: int, now: datetime,
                          prejudged: bool = False) -> dict[str, int]:
        """Store the canonical rows of `<shape>_classified`'s usable rows, with their duplicate keys; count them
        per table. prejudged: built by _prejudge, so every table they read is committed (_staged_views) and
        DuckDB reads on all threads; and every row is new to the store, so none is looked up in it."""
        con = self.con
        counts: dict[str, int] = {}
        # Shapes that judge a source's whole history again (trees, ratings) meet rows already stored or moved
        # to quarantine (duplicates, caps): neither comes back. A prejudged batch cannot hold such a row: its
        # rows are this read's new keys and pending feedback, never stored or quarantined (a replaced key or
        # one fixed from quarantine rules _prejudge out), so looking them up would only cost time.
        for table, sql in (("unpaired", shape.unpaired_sql), ("pairs", shape.pairs_sql)):
            unseen = "" if prejudged else (
                f"WHERE event_id NOT IN (SELECT event_id FROM {table} WHERE source = $source "
                "UNION ALL SELECT event_id FROM quarantine WHERE source = $source)")
            before = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            normalised_cols, normalised = canonical.NORMALISED[table]
            # Rows built from what the transaction wrote are read on one thread: insert them with one
            # too (pipeline/ingest/writes.py).
            with nullcontext() if prejudged else one_thread(con), \
                    joins_as_written(con) if shape.joins_as_written else nullcontext():
                con.execute(
                    f"INSERT INTO {table} BY NAME SELECT * EXCLUDE ({normalised_cols}), $batch_id AS batch_id, "
                    f"$now AS ingested_at, {canonical.KEYS[table]} FROM (SELECT *, {normalised} FROM ({sql_text(sql)}) "
                    f"{unseen})",
                    {"batch_id": batch_id, "now": now, "source": source},
                )
            counts[table] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] - before
        return counts

    def _insert_observed(self, table: str, sql: str, source: str, batch_id: int, now: datetime) -> int:
        """Store what a shape observed as it is (ranked answers in `ranks`, votes for neither answer in `ties`;
        a constant table name, never a setting); count the new rows."""
        before = self.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        with one_thread(self.con):
            self.con.execute(
                f"INSERT INTO {table} BY NAME SELECT *, $batch_id AS batch_id, $now AS ingested_at "
                f"FROM ({sql_text(sql)}) WHERE event_id NOT IN (SELECT event_id FROM {table} WHERE source = "
                "$source UNION ALL SELECT event_id FROM quarantine WHERE source = $source)",
                {"batch_id": batch_id, "now": now, "source": source})
        return self.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] - before

    # ------------------------------------------------------------------ reading
    def counts(self) -> dict[str, int]:
        return {
            t: self.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("unpaired", "pairs", "ranks", "ties", "quarantine", "raw_events_generations", "raw_events_feedback")
        }

    def quarantine_reasons(self, source: str | None = None, batch_id: int | None = None) -> list[tuple[str, int]]:
        """(reason, rows) quarantined, most first: of one source and one ingest batch when given."""
        return self.con.execute(
            "SELECT reason, count(*) AS n FROM quarantine WHERE ($source IS NULL OR source = $source) "
            "AND ($batch IS NULL OR batch_id = $batch) GROUP BY reason ORDER BY n DESC, reason",
            {"source": source, "batch": batch_id}
        ).fetchall()

    def quarantine_examples(self, reason: str, source: str | None = None, limit: int = 3) -> list[tuple[str, str]]:
        """(source, payload) of a few quarantined rows with this reason, newest first."""
        return self.con.execute(
            "SELECT source, payload::VARCHAR FROM quarantine WHERE reason = $reason AND ($source IS NULL OR "
            "source = $source) ORDER BY quarantined_at DESC, event_id LIMIT $limit",
            {"reason": reason, "source": source, "limit": limit},
        ).fetchall()

    def conflict_counts(self, source: str | None = None) -> list[tuple[str, int]]:
        return self.con.execute(
            "SELECT outcome, count(*) FROM conflicts WHERE $source IS NULL OR source = $source "
            "GROUP BY outcome ORDER BY outcome", {"source": source}).fetchall()

    def contradictions(self) -> dict[str, int]:
        """Per source: items that got opposite judgements (kept; the evidence of label noise)."""
        sql = (sql_text("store/contradictions.sql").replace("__UNPAIRED__", canonical.item_judgements("unpaired"))
               .replace("__PAIRS__", canonical.item_judgements("pairs")))
        return dict(self.con.execute(sql).fetchall())

    def snapshot(self) -> Snapshot:
        """Freeze the canonical rows as they are now. The id is a hash of their event ids, so the
        same content always gets the same id (store/snapshot_identity.sql)."""
        con = self.con
        high = con.execute("SELECT coalesce(max(batch_id), 0) FROM ingest_log").fetchone()[0]
        snapshot_id, n_unpaired, n_pairs = self.snapshot_identity(high)
        # n_pairs counts the pairs a reader gets: observed ones and those derived from ranks.
        n_pairs += with_pairs_from_ranks(PAIRS_SCHEMA.empty_table(), self._ranks(high)).num_rows
        con.execute(
            "INSERT OR IGNORE INTO snapshots VALUES (?, ?, ?, ?, ?)",
            [snapshot_id, _utcnow(), high, n_unpaired, n_pairs],
        )
        return self.get_snapshot(snapshot_id)

    def snapshot_identity(self, high_water_batch: int) -> tuple[str, int, int]:
        """(id, unpaired rows, pairs) of the snapshot at this high-water batch; the same whenever asked,
        as later batches never change what a snapshot holds."""
        sql = (sql_text("store/snapshot_identity.sql")
               .replace("__UNPAIRED__", _snapshot_rows_sql("unpaired"))
               .replace("__PAIRS__", _snapshot_rows_sql("pairs"))
               .replace("__RANKS__", _snapshot_rows_sql("ranks"))
               .replace("__TIES__", _snapshot_rows_sql("ties")))
        snapshot_id, n_unpaired, n_pairs = self.con.execute(sql, {"high": high_water_batch}).fetchone()
        return snapshot_id, n_unpaired, n_pairs

    def get_snapshot(self, snapshot_id: str) -> Snapshot:
        row = self.con.execute("SELECT * FROM snapshots WHERE snapshot_id = ?", [snapshot_id]).fetchone()
        if row is None:
            raise TerminalError(f"snapshot {snapshot_id} is not in the store {self.path}; run `alignloop ingest` first")
        return Snapshot(*row)

    def rows_since(self, snapshot: Snapshot) -> int:
        """Feedback rows stored after the snapshot was taken (store/rows_since.sql): a count, no rows read."""
        return int(self.con.execute(sql_text("store/rows_since.sql"), {"high": snapshot.high_water_batch}).fetchone()[0])

    def _ranks(self, high_water_batch: int) -> pa.Table:
        """The ranks a snapshot at this high-water batch holds, as they were when it was taken."""
        cols = ", ".join(RANKS_SCHEMA.names)
        sql = f"SELECT {cols} FROM ({_snapshot_rows_sql('ranks')}) ORDER BY ts, event_id"
        return self.con.execute(sql, {"high": high_water_batch}).to_arrow_table().cast(RANKS_SCHEMA)

    def read_snapshot(self, snapshot: Snapshot) -> tuple[pa.Table, pa.Table]:
        """The snapshot's (unpaired, pairs) rows in their canonical schemas, oldest first: the rows as they
        were when it was taken, whatever was replaced since. Pairs carry `derived_from`: NULL for observed
        pairs, 'ranks' or 'ratings' for pairs derived from stored ranks or rated answers."""
        tables = []
        for table, schema in (("unpaired", UNPAIRED_SCHEMA), ("pairs", PAIRS_SCHEMA)):
            sql = f"SELECT {', '.join(schema.names)} FROM ({_snapshot_rows_sql(table)}) ORDER BY ts, event_id"
            arrow = self.con.execute(sql, {"high": snapshot.high_water_batch}).to_arrow_table()
            tables.append(arrow.cast(schema))
        return tables[0], with_pairs_from_ranks(tables[1], self._ranks(snapshot.high_water_batch))

    def measure(self, snapshot: Snapshot, holdout_fraction: float, *, memory_limit: str | None = None,
                **kw: Any) -> Any:
        """The snapshot's shape (alignloop.profile.measure_relations), measured inside the store's DuckDB: its rows
        are copied to temp tables (oldest first, as read_snapshot reads them), never to Arrow or Python, so
        memory stays within DuckDB's limit (memory_limit, e.g. ingest.memory_limit) whatever the size.
        Keyword settings as measure_relations (max_length, tokenizer, ...); the result is
        measure_profile(*read_snapshot(snapshot), ...)'s."""
        from alignloop.profile.measure import copy_measured, measure_relations

        con = self.con
        if memory_limit:
            con.execute("SET memory_limit = ?", [memory_limit])
        high = str(int(snapshot.high_water_batch))  # an integer from the store: inlined, as temp tables take no $
        unpaired_sql = f"SELECT {', '.join(UNPAIRED_SCHEMA.names)} FROM ({_snapshot_rows_sql('unpaired')})"
        ties_sql = f"SELECT verdict FROM ({_snapshot_rows_sql('ties')})"
        try:
            copy_measured(con, unpaired_sql.replace("$high", high),
                          _snapshot_pairs_sql(with_origin=True).replace("$high", high), "ORDER BY ts, event_id",
                          ties_sql=ties_sql.replace("$high", high))
            return measure_relations(con, holdout_fraction, **kw)
        finally:
            for name in ("unpaired_in", "pairs_in", "ties_in"):
                con.execute(f"DROP TABLE IF EXISTS {name}")

    def read_side(self, snapshot: Snapshot, table: str, *, holdout: bool, holdout_fraction: float,
                  cap: int | None = None) -> pa.Table:
        """One side of the snapshot's train/holdout split of `table` (unpaired or pairs), oldest first, with
        at most `cap` rows (the newest). The split and the cap are applied in DuckDB: only these rows are
        fetched. The split is alignloop.schema.is_holdout's, row for row."""
        schema, sql, params = self._side_query(snapshot, table, holdout, holdout_fraction, cap)
        return self.con.execute(sql, params).to_arrow_table().cast(schema)

    def sample_side(self, snapshot: Snapshot, table: str, *, holdout: bool, holdout_fraction: float, per_group: int,
                    seed: int = 0, by_label: bool = False, cap: int | None = None) -> pa.Table:
        """A seeded sample of the rows read_side reads (the side's newest `cap`, all with None): at most
        `per_group` rows, or that many of each thumbs label with `by_label`, drawn in DuckDB so only they are
        fetched."""
        schema, side_sql, params = self._side_query(snapshot, table, holdout, holdout_fraction, cap)
        sql = (sql_text("store/snapshot_sample.sql").replace("__SIDE_ROWS__", side_sql)
               .replace("__COLUMNS__", ", ".join(schema.names))
               .replace("__GROUP__", "label" if by_label and table == "unpaired" else "NULL"))
        params = {**params, "per_group": int(per_group), "seed": int(seed)}
        return self.con.execute(sql, params).to_arrow_table().cast(schema)

    @staticmethod
    def _side_query(snapshot: Snapshot, table: str, holdout: bool, holdout_fraction: float,
                    cap: int | None) -> tuple[pa.Schema, str, dict[str, Any]]:
        """(schema, SQL, parameters) of one side of the snapshot's split of `table`, capped (snapshot_side.sql)."""
        schema = {"unpaired": UNPAIRED_SCHEMA, "pairs": PAIRS_SCHEMA}[table]
        rows_sql = _snapshot_pairs_sql() if table == "pairs" else _snapshot_rows_sql(table)
        sql = (sql_text("store/snapshot_side.sql").replace("__SNAPSHOT_ROWS__", rows_sql)
               .replace("__COLUMNS__", ", ".join(schema.names)))
        params = {"high": snapshot.high_water_batch, "holdout_fraction": float(holdout_fraction),
                  "holdout": holdout, "cap": None if cap is None else int(cap)}
        return schema, sql, params

    def read_split(self, snapshot: Snapshot, holdout_fraction: float, max_train_examples: int | None = None, *,
                   train: bool = True, holdout: bool = True) -> SnapshotSplit:
        """The snapshot split by prompt hash into train and holdout Arrow tables (a side not asked for is
        empty); each training table keeps its newest max_train_examples rows."""
        def side(table: str, held_out: bool, wanted: bool, cap: int | None) -> pa.Table:
            if not wanted:
                return {"unpaired": UNPAIRED_SCHEMA, "pairs": PAIRS_SCHEMA}[table].empty_table()
            return self.read_side(snapshot, table, holdout=held_out, holdout_fraction=holdout_fraction, cap=cap)

        return SnapshotSplit(
            train_unpaired=side("unpaired", False, train, max_train_examples),
            train_pairs=side("pairs", False, train, max_train_examples),
            holdout_unpaired=side("unpaired", True, holdout, None),
            holdout_pairs=side("pairs", True, holdout, None),
        )

    def source_cursors(self) -> dict[str, str]:
        rows = self.con.execute("SELECT source, input, position FROM cursors ORDER BY source, input").fetchall()
        return {f"{s}.{i}": p for s, i, p in rows}


def _snapshot_rows_sql(table: str) -> str:
    """store/snapshot_rows.sql for one canonical table, ranks or ties (a constant name, never a setting)."""
    if table not in (*canonical.CANONICAL, "ranks", "ties"):
        raise ValueError(f"not a canonical table: {table!r}")
    return sql_text("store/snapshot_rows.sql").replace("__TABLE__", table)


def _snapshot_pairs_sql(with_origin: bool = False) -> str:
    """The pairs a snapshot holds as a reader gets them: the observed ones and those derived from its ranks
    (sql/derived_pairs_from_ranks.sql over the snapshot's ranks), in the canonical pairs columns; with_origin
    adds `derived_from` (NULL for observed pairs)."""
    cols = ", ".join(PAIRS_SCHEMA.names)
    observed_origin, derived_origin = (", NULL::VARCHAR AS derived_from", ", derived_from") if with_origin else ("", "")
    derived = f"WITH ranks_in AS ({_snapshot_rows_sql('ranks')})\n{sql_text('derived_pairs_from_ranks.sql')}"
    return (f"SELECT {cols}{observed_origin} FROM ({_snapshot_rows_sql('pairs')})\nUNION ALL\n"
            f"SELECT {cols}{derived_origin} FROM ({derived})")


def _order(position: CursorPosition) -> Any:
    if position.kind == INTEGER:
        return int(position.value)
    if position.kind == TEXT:
        return parse_iso(position.value)
    return datetime.fromisoformat(position.value)
