"""Land one input of a source: read its window, check every row, and merge the good rows by key.

`stage`, before the ingest's transaction opens, changes nothing stored: one pass over the connector's
batches fills a staging table whose `_problem` column holds the first failed check (missing key or
timestamp, unparseable, infinite or future timestamp, invalid UTF-8, control characters, blank or
oversized text), and the good rows are compared with the landing table by key and content hash
(sql/store/land_decide.sql). Text is PII-scrubbed and user ids are hashed inside that same pass.
`merge`, inside the transaction, sends the bad rows to quarantine with the reason and what was read,
records conflicts, removes replaced versions and inserts the rows that land.

A shape with a per-batch `prepare` step (every shape but `events`) has each batch turned into its
landing rows first (`ResolvedInput.to_canonical`); the checks then run on those rows, and a row the
shape has already judged unusable (its `prep_problem`) lands as it is, so the shape quarantines it
with its own reason. File sources are read by file: files already landed are skipped, and the files
read are recorded with the rows. The batches of one read may differ in Arrow types (files whose types
DuckDB told apart): each is staged as its own types say, and a column staged as read becomes text where
they disagree (`_stage_slices`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from alignloop.connectors.base import ROW_PROBLEM, Connector, ConnectorError, Window, quote_identifier
from alignloop.config import IngestSettings
from alignloop.errors import ConfigError, TerminalError, TransientError
from alignloop.ingest.sqlbind import bind, sql_literal
from alignloop.ingest.writes import one_thread, spilled
from alignloop.ingest.cursors import INTEGER, TEXT, TIMESTAMP, CursorPosition, cursor_kind
from alignloop.ingest.prepared import as_source_position, prepared_view
from alignloop.pii import MAYBE_ESCAPED, MAYBE_PII, scrub_json_sql, scrub_sql
from alignloop.shapes import ResolvedInput
from alignloop.shapes.base import text_problem
from alignloop.sqlfiles import sql_text

CONTROL_CHARS = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F]"
BLANK = r"[\s\p{Z}]*"
READER = "landing_reader"
# Arrow data per staging statement, and rows per batch handed to DuckDB (landing._slices).
SLICE_BYTES = 128 * 1024 * 1024
PIECE_ROWS = 8192
# Columns in which a prepared shape says why a landed row cannot be used (it quarantines those itself).
SHAPE_PROBLEMS = ("prep_problem", "target_problem")


@dataclass(frozen=True)
class LandedInput:
    rows_read: int
    added: int          # rows new to the landing table (new keys and newer versions)
    replaced: int       # stored or quarantined versions a newer version replaced
    quarantined: int    # bad rows newly sent to quarantine
    duplicates: int     # rows identical to one already stored or read (re-reads, look-back)
    conflicts: int      # differing versions of one key that lost (recorded in `conflicts`)
    position: CursorPosition | None  # the new cursor (None: nothing usable read)
    replaced_keys: tuple[str, ...] = ()
    files: frozenset[tuple[str, str]] = frozenset()  # (path, content hash) of the files read
    shape_bad: int = 0  # landed rows a prepared shape found unusable (it quarantines them itself)


@dataclass(frozen=True)
class Landing:
    """Everything one input's landing needs to know."""

    source: str
    inp: ResolvedInput
    now: datetime
    settings: IngestSettings
    salt: str
    cursor_column: str | None  # source column (None: the source is read whole every run)
    cursor_setting: str     # config path naming it, for errors
    position: CursorPosition | None
    # File sources: the (path, content hash) pairs already landed; None: not read by file.
    loaded_files: frozenset[tuple[str, str]] | None = None

    @property
    def where(self) -> str:
        return f"source {self.source!r}, input {self.inp.spec.name} (table {self.inp.table})"


def _q(name: str) -> str:
    return quote_identifier(name)


_TOKEN = re.compile(r"__([A-Z][A-Z_]*?)__")


def _fill(sql: str, **names: str) -> str:
    """Put shape-defined identifiers and column lists into a sql/store template, in one pass: what is filled
    in is never searched for tokens again."""
    return _TOKEN.sub(lambda m: names.get(m.group(1), m.group(0)), sql)


@dataclass(frozen=True)
class Staged:
    """One input's window, read and checked into a temporary table, and decided against the landing table."""

    job: Landing        # as the checks see it (a prepared shape's landing rows)
    table: str          # staged rows: the checks' `_problem`, `_key`, `_ts`, `_hash`
    decided: str        # the staged rows that need deciding, with their `_decision` (sql/store/land_decide.sql)
    decisions: dict[str, int]
    rows_read: int
    position: CursorPosition | None
    files: frozenset[tuple[str, str]]

    @property
    def kept(self) -> str:
        """The staged rows that land: good ones not decided otherwise (most rows never need deciding)."""
        return (f"SELECT s.* FROM {self.table} AS s WHERE s._problem IS NULL AND s.rowid NOT IN "
                f"(SELECT _row FROM {self.decided} WHERE _decision NOT IN ('new', 'replace'))")

    def landed_rows(self, source: str, batch_id: int) -> str:
        """The kept rows as the landing table will hold them (constants inlined: views take no parameters)."""
        spec = self.job.inp.spec
        cols = ", ".join(f"{_q('_ts') if c == spec.cursor else _q(c)} AS {_q(c)}" for c in spec.columns)
        return (f"SELECT {sql_literal(source)} AS source, {int(batch_id)}::BIGINT AS batch_id, {cols}, _hash AS row_hash "
                f"FROM ({self.kept})")


def stage(con: duckdb.DuckDBPyConnection, job: Landing, connector: Connector, table: str) -> Staged | None:
    """Read one input's window through the connector, check every row into `table`, and decide what the good
    rows do to the landing table (None: nothing read). Nothing in the store is changed.

    The ingest stages every input before its transaction opens: DuckDB scans tables written inside a
    transaction on one thread only, and the connector's read need not hold the store's write transaction."""
    cap = job.now + job.settings.future_skew
    raw_first, first, batches, errors, read, close_read = _open_read(job, connector)
    if first is None:
        return None
    # A check that refuses the input before every batch is read still ends the connector's read: its
    # connection (and any lock it holds on the source) must not outlive this call in a long-running process.
    try:
        kind = _check_cursor(job, raw_first if job.inp.prepare else first) if job.cursor_column is not None else None
        source_kind, source_job = kind, job
        if job.inp.prepare is not None:
            job, kind = prepared_view(job, first.schema), TIMESTAMP
        spec = job.inp.spec
        cursor = _stage_sql(job, first.schema, kind, cap)[2]  # its columns: the same whatever the batches' types
        try:
            _stage_slices(con, job, batches, kind, cap, table)
        except BaseException as e:
            con.execute(f"DROP TABLE IF EXISTS {table}")  # the slices staged before the one that failed
            con.execute(f"DROP TABLE IF EXISTS {table}_probe")
            if not isinstance(e, duckdb.Error):
                raise
            if errors:
                raise _connector_error(job, errors[0]) from None
            raise TerminalError(
                f"{job.where}: rows do not fit the {spec.name} columns ({str(e).splitlines()[0]}); "
                f"check the column types and sources[{job.source}].mapping.{spec.name}"
            ) from None
        finally:
            con.unregister(READER)
    finally:
        close_read()
    if errors:
        raise _connector_error(job, errors[0])

    rows_read, position = _read_position(con, table, kind, cap, *cursor)
    if source_job.inp.prepare is not None:
        rows_read = read["rows"]   # source rows (a nested export gives several landing rows per row)
        position = None if source_kind is None else as_source_position(position, source_kind, raw_first,
                                                                        source_job.cursor_column)
    decided = f"{table}_decided"
    con.execute(_fill(sql_text("store/land_decide.sql"), **_names(spec, table, decided)), {"source": job.source})
    decisions = dict(con.execute(f"SELECT _decision, count(*) FROM {decided} GROUP BY ALL").fetchall())
    return Staged(job=job, table=table, decided=decided, decisions=decisions, rows_read=rows_read,
                  position=position, files=frozenset(read["files"]))


def _stage_slices(con: duckdb.DuckDBPyConnection, job: Landing, batches: Iterator[pa.RecordBatch], kind: str,
                  cap: datetime, table: str) -> None:
    """Fill `table` with the read's rows, one statement per slice (_slices), each slice read by the staging
    SELECT made for its own Arrow schema.

    The batches of one read may differ in types: two files of one source (DuckDB tells each file's types from
    its own rows: a bad `ts` makes it text in one file, a timestamp in the next), or a file read again row by
    row from a readable copy. Each batch's key, time and checks are read as its own types say (a time as
    text is parsed as text times always are, so a timestamp and its ISO text give the same instant). A column
    staged as it was read (neither key, time, text nor user id) that a slice gives another type than the rows
    before it becomes text (VARCHAR) in `table`, every value, earlier ones included, as its own text: the
    text its landing column holds anyway (`1` stays `1` beside `1.5`, never `1.0`; `01` never becomes `1`)."""
    staged_schema: pa.Schema | None = None
    for schema, part in _slices(_pieces(batches)):
        select, params, _ = _stage_sql(job, schema, kind, cap)
        if staged_schema is None:
            sql = f"CREATE OR REPLACE TEMP TABLE {table} AS {select}"
        else:
            if not schema.equals(staged_schema):
                _widen(con, table, select, params, schema)
            sql = f"INSERT INTO {table} BY NAME {select}"
        con.register(READER, pa.RecordBatchReader.from_batches(schema, part))
        con.execute(sql, bind(sql, params))
        staged_schema = schema


def _widen(con: duckdb.DuckDBPyConnection, table: str, select: str, params: dict[str, Any],
           schema: pa.Schema) -> None:
    """Make each column of `table` that `select` gives another type VARCHAR, so the slice of Arrow `schema`
    inserts into it without a value changing (`select`'s types are found on an empty reader)."""
    probe = f"{table}_probe"
    con.register(READER, pa.RecordBatchReader.from_batches(schema, []))
    sql = f"CREATE OR REPLACE TEMP TABLE {probe} AS {select} LIMIT 0"
    con.execute(sql, bind(sql, params))
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {probe})").fetchall())
    con.execute(f"DROP TABLE {probe}")
    for name, staged in con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {table})").fetchall():
        if name in types and types[name] != staged and staged != "VARCHAR":
            con.execute(f"ALTER TABLE {table} ALTER COLUMN {_q(name)} TYPE VARCHAR")


def _names(spec: Any, table: str, decided: str) -> dict[str, str]:
    return dict(RAW_TABLE=spec.raw_table, KEY=_q(spec.key), TS=_q(spec.cursor), STAGE=table, DECIDED=decided,
                PAYLOAD=_payload(spec.columns, ""), STORED_PAYLOAD=_payload(spec.columns, "r."))


def fixed_in_quarantine(con: duckdb.DuckDBPyConnection, staged: Staged) -> int:
    """Quarantined rows of older, broken versions that a kept row of this read replaces."""
    return _count(con, f"SELECT count(*) FROM quarantine AS q WHERE {_fixed_where(staged)}",
                  {"source": staged.job.source, "input": staged.job.inp.spec.name})


def _fixed_where(staged: Staged) -> str:
    return (f"source = $source AND input = $input AND EXISTS (SELECT 1 FROM ({staged.kept}) AS k "
            "WHERE k._key = q.key AND (q.ts IS NULL OR q.ts <= k._ts))")


def merge(con: duckdb.DuckDBPyConnection, staged: Staged, batch_id: int) -> LandedInput:
    """Merge staged rows into the input's landing table as batch `batch_id`, inside the ingest's transaction:
    bad rows to quarantine, conflicts recorded, replaced versions removed, kept rows inserted."""
    job = staged.job
    spec = job.inp.spec
    names = _names(spec, staged.table, staged.decided)
    base = {"source": job.source, "input": spec.name, "batch_id": batch_id, "now": job.now}
    decided = staged.decisions
    before_q = _count(con, "SELECT count(*) FROM quarantine WHERE source = ?", [job.source])
    sql = _fill(sql_text("store/land_quarantine.sql"), **names)
    con.execute(sql, bind(sql, base))
    quarantined = _count(con, "SELECT count(*) FROM quarantine WHERE source = ?", [job.source]) - before_q

    n_new = _count(con, f"SELECT count(*) FROM {staged.table} WHERE _problem IS NULL", {}) \
        - sum(decided.values()) + decided.get("new", 0)
    conflicts = decided.get("batch_conflict", 0) + decided.get("stale", 0) + decided.get("replace", 0)
    if conflicts:
        sql = _fill(sql_text("store/land_conflicts.sql"), **names)
        con.execute(sql, bind(sql, base))
    replaced_keys: tuple[str, ...] = ()
    if decided.get("replace"):
        replaced_keys = tuple(k for (k,) in con.execute(
            f"SELECT _key FROM {staged.decided} WHERE _decision = 'replace'").fetchall())
        con.execute(
            f"DELETE FROM {spec.raw_table} WHERE source = $source AND {_q(spec.key)} IN "
            f"(SELECT _key FROM {staged.decided} WHERE _decision = 'replace')", {"source": job.source})
    # A good row whose key sits in quarantine from an older, broken version replaces that version.
    fixed_where = _fixed_where(staged)
    params = {"source": job.source, "input": spec.name}
    fixed = _count(con, f"SELECT count(*) FROM quarantine AS q WHERE {fixed_where}", params)
    if fixed:
        con.execute(f"DELETE FROM quarantine AS q WHERE {fixed_where}", params)
    problems = [p for p in SHAPE_PROBLEMS if p in spec.columns]
    unusable = " OR ".join(f"{p} IS NOT NULL" for p in problems)
    shape_bad = _count(con, f"SELECT count(*) FROM ({staged.kept}) WHERE {unusable}", {}) if problems else 0
    with nullcontext() if spilled(con) else one_thread(con):
        con.execute(f"INSERT INTO {spec.raw_table} BY NAME {staged.landed_rows(job.source, batch_id)}")
    return LandedInput(
        rows_read=staged.rows_read, added=n_new + decided.get("replace", 0),
        replaced=decided.get("replace", 0) + fixed, quarantined=quarantined,
        duplicates=decided.get("same", 0) + decided.get("batch_duplicate", 0), conflicts=conflicts,
        position=staged.position, replaced_keys=replaced_keys, files=staged.files,
        shape_bad=shape_bad,
    )


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: Any) -> int:
    return con.execute(sql, params).fetchone()[0]


def _payload(columns: tuple[str, ...], prefix: str) -> str:
    return "struct_pack(" + ", ".join(f"{_q(c)} := {prefix}{_q(c)}" for c in columns) + ")"


# ------------------------------------------------------------------------------------------ reading
def _open_read(job: Landing, connector: Connector) -> tuple[
        pa.RecordBatch | None, pa.RecordBatch | None, Iterator[pa.RecordBatch], list, dict[str, Any],
        Callable[[], None]]:
    """Start the connector's read; return its first non-empty batch as read and as staged, an iterator
    over all staged batches, what the read saw (`rows`, `files`, filled in while DuckDB pulls), and a
    function that ends the read (closes the connector's generator, and so its connection) when the
    batches are not all pulled.

    Errors raised while DuckDB pulls later batches are kept in `errors` so they surface as themselves.
    """
    window = _window(job)
    errors: list[BaseException] = []
    read: dict[str, Any] = {"rows": 0, "files": set()}
    try:
        it = iter(connector.read(window))
        first = next((b for b in it if b.num_rows), None)
    except ConnectorError as e:
        raise _connector_error(job, e) from None
    close_read: Callable[[], None] = getattr(it, "close", None) or (lambda: None)   # a generator's close
    if first is None:
        close_read()
        return None, None, iter(()), errors, read, close_read
    try:
        _check_returned_columns(job, first, window.columns)
        stage = _stager(job, [c for c in first.schema.names if c != ROW_PROBLEM], read)
        staged_first = stage(first)
    except BaseException:
        close_read()
        raise

    def guarded() -> Iterator[pa.RecordBatch]:
        try:
            yield staged_first
            for batch in it:
                if batch.num_rows:
                    yield stage(batch)
        except BaseException as e:  # noqa: B036 - re-raised by stage() after DuckDB gives up
            errors.append(e)
            raise

    return first, staged_first, guarded(), errors, read, close_read


def _stager(job: Landing, names: list[str], read: dict[str, Any]) -> Callable[[pa.RecordBatch], pa.RecordBatch]:
    """One batch as staged, counted (with its files) in `read`: as read, or as the shape's canonical rows."""
    inp = job.inp
    prepared = inp.prepare is not None
    by_file = job.loaded_files is not None

    def stage(batch: pa.RecordBatch) -> pa.RecordBatch:
        read["rows"] += batch.num_rows
        if by_file:
            read["files"].update(zip(batch.column("_file").to_pylist(), batch.column("_file_hash").to_pylist(),
                                     strict=True))
        if not prepared:
            return _as_read(batch, names, inp)
        try:
            return inp.to_canonical(batch)  # the shape's per-batch step: mapping, parsing, keys
        except KeyError as e:
            raise TerminalError(f"{job.where}: the connector returned no column {e}; "
                                f"check sources[{job.source}].mapping.{inp.spec.name} in the config") from None

    return stage


def _window(job: Landing) -> Window:
    """What to ask the connector for: the input's table from its cursor minus the look-back (or the files
    not yet landed), and its mapped columns; a prepared shape's columns may be absent (optional), so it
    reads them all and the shape decides."""
    inp = job.inp
    if inp.prepare is not None:
        columns = tuple(dict.fromkeys([*inp.read_columns, *([job.cursor_column] if job.cursor_column else [])])) \
            if inp.read_columns else ()
    else:
        columns = tuple(dict.fromkeys([*inp.source_columns.values(), job.cursor_column]))
    start = job.position.window_start(job.settings.lookback) \
        if job.position and job.cursor_column and job.loaded_files is None else None
    return Window(table=inp.table, cursor_column=job.cursor_column, start=start, columns=columns,
                  loaded_files=job.loaded_files)


def _check_returned_columns(job: Landing, first: pa.RecordBatch, columns: tuple[str, ...]) -> None:
    """The first batch holds the columns asked for (a prepared shape: the cursor column); errors name the setting."""
    needed = ([job.cursor_column] if job.cursor_column else []) if job.inp.prepare is not None else columns
    missing = [c for c in needed if c not in first.schema.names]
    if not missing:
        return
    if missing == [job.cursor_column] and job.cursor_column not in job.inp.source_columns.values():
        raise ConfigError(f"{job.cursor_setting}: the connector returned no column {missing[0]!r}; "
                          "name an existing column as the cursor")
    raise TerminalError(f"{job.where}: the connector returned no column {missing[0]!r}; "
                        f"check sources[{job.source}].mapping.{job.inp.spec.name} in the config")


def _as_read(batch: pa.RecordBatch, names: list[str], inp: ResolvedInput) -> pa.RecordBatch:
    """A batch of a shape without a per-batch step (`events`) as staged: its columns, with JSON documents (a
    column of mixed types) as their text, and `_row_problem`: why a row cannot be used as read (NULL: it can).
    A JSON string is its text; a number, its JSON text; an object or a list, where text belongs, a problem."""
    problems = batch.column(ROW_PROBLEM).to_pylist() if ROW_PROBLEM in batch.schema.names else [None] * batch.num_rows
    out = batch.select(names)
    canonical = {source: name for name, source in inp.source_columns.items()}
    for i, field in enumerate(out.schema):
        if not isinstance(field.type, pa.JsonType):
            continue
        name = canonical.get(field.name, field.name)
        texts = []
        for row, doc in enumerate(out.column(i).storage.to_pylist()):
            value = None if doc is None else json.loads(doc)
            texts.append(value if value is None or isinstance(value, str) else doc)
            if name not in inp.spec.json_columns and not isinstance(value, str):
                problems[row] = problems[row] or text_problem(value, name)
        out = out.set_column(i, field.name, pa.array(texts, pa.string()))
    return out.append_column(ROW_PROBLEM, pa.array(problems, pa.string()))


def _connector_error(job: Landing, e: BaseException) -> BaseException:
    if not isinstance(e, ConnectorError):
        return e
    text = str(e)
    if not e.transient and (f'"{job.cursor_column}"' in text or f"'{job.cursor_column}'" in text):
        if job.cursor_column not in job.inp.source_columns.values():
            return ConfigError(f"{job.cursor_setting}: table {job.inp.table} has no column {job.cursor_column!r}; "
                               "name an existing column as the cursor")
    kind = TransientError if e.transient else TerminalError
    return kind(f"{job.where}: {text}")


def _check_cursor(job: Landing, first: pa.RecordBatch) -> str:
    column = first.column(job.cursor_column)
    sample = None
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        sample = next((v for v in column.to_pylist() if v is not None), None)
    if job.loaded_files is not None and sample is not None and cursor_kind(column.type, sample, "") == TEXT:
        # CSV is read as text, so a file source's times arrive as ISO strings: keep its cursor a timestamp,
        # as a typed export of the same rows gives, so a source mixing Parquet and CSV files agrees.
        return TIMESTAMP
    kind = cursor_kind(column.type, sample, job.cursor_setting)
    # A file source is read by file, never from its cursor: its cursor's kind may change (CSV read as text).
    if job.position is not None and job.position.kind != kind and job.loaded_files is None:
        raise ConfigError(
            f"{job.cursor_setting}: the cursor column was read as {job.position.kind} before and is {kind} now; "
            "keep the cursor column's type, or start a new store"
        )
    return kind


# ------------------------------------------------------------------------------------------ staging
# 9999-12-31T23:59:59Z in seconds: the last time a number may name.
_MAX_EPOCH_S = 253402300799


def _ts_expr(col: str, arrow_type: pa.DataType, setting: str) -> str:
    """A DuckDB expression giving the column as a naive UTC TIMESTAMP (NULL when unparseable)."""
    if pa.types.is_timestamp(arrow_type):
        return f"timezone('UTC', {col})" if arrow_type.tz else f"CAST({col} AS TIMESTAMP)"
    if pa.types.is_date(arrow_type):
        return f"CAST({col} AS TIMESTAMP)"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        # The store's session is UTC, so text without an offset is read as UTC; with one, converted.
        return f"timezone('UTC', try_cast({col} AS TIMESTAMPTZ))"
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        # Seconds since 1970-01-01 UTC, as every other shape reads a number (shapes/base.py parse_ts); a value
        # past year 9999 (milliseconds, say) or not finite is NULL, so its row is quarantined.
        seconds = f"CAST({col} AS DOUBLE)"
        return (f"timezone('UTC', to_timestamp(CASE WHEN isfinite({seconds}) AND abs({seconds}) < {_MAX_EPOCH_S} "
                f"THEN {seconds} END))")
    raise ConfigError(
        f"{setting}: a column of type {arrow_type} is not a timestamp; map a timestamp or ISO-8601 text column"
    )


def _pieces(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The batches cut into pieces of at most PIECE_ROWS rows (zero-copy). DuckDB scans each Arrow batch on one
    thread: a window of under 50,000 rows (an incremental run) came as one batch and was staged on one core."""
    for batch in batches:
        if batch.num_rows <= PIECE_ROWS:  # empty ones too: the first statement must run to create the table
            yield batch
            continue
        for offset in range(0, batch.num_rows, PIECE_ROWS):
            yield batch.slice(offset, PIECE_ROWS)


def _slices(batches: Iterator[pa.RecordBatch]) -> Iterator[tuple[pa.Schema, Iterator[pa.RecordBatch]]]:
    """The read's batches in consecutive slices of about SLICE_BYTES of Arrow data each (at least one batch),
    each to be staged by a statement of its own, with the Arrow schema all its batches share: a batch of other
    types starts a new slice. DuckDB keeps the Arrow batches a statement has scanned until that statement ends,
    outside its memory limit: one statement for a whole large read would hold all of it at once. Slices bound
    what is held to one slice, whatever the read's size. Each slice must be read to its end before the next is
    asked for; one that was not would lose rows, so it is an error."""
    it = iter(batches)
    head = next(it, None)
    while head is not None:
        state: dict[str, Any] = {"next": None, "ended": False}

        def part(head: pa.RecordBatch = head, state: dict[str, Any] = state) -> Iterator[pa.RecordBatch]:
            size = head.nbytes
            yield head
            for batch in it:
                if size >= SLICE_BYTES or not batch.schema.equals(head.schema):
                    state["next"] = batch
                    break
                size += batch.nbytes
                yield batch
            state["ended"] = True

        yield head.schema, part()
        if not state["ended"]:
            raise RuntimeError("staging: a slice of the read was not read to its end")
        head = state["next"]


def _stage_sql(job: Landing, schema: pa.Schema, kind: str, cap: datetime
               ) -> tuple[str, dict[str, Any], tuple[str, str]]:
    """The SELECT over the registered reader that gives the staged rows (sql/store/land_stage.sql), its
    parameters, and the staged columns holding each row's cursor value and its text (_read_position)."""
    spec = job.inp.spec
    # A row its shape already judged unusable lands as it is: the shape quarantines it with its reason.
    checks = [f"WHEN {_q(p)} IS NOT NULL THEN NULL" for p in SHAPE_PROBLEMS if p in schema.names]
    read: list[str] = []
    if ROW_PROBLEM in schema.names:  # why the connector could not read a row as it was (NULL: it could)
        read.append(_q(ROW_PROBLEM))
        checks.append(f"WHEN {_q(ROW_PROBLEM)} IS NOT NULL THEN {_q(ROW_PROBLEM)}")
    checks.append(f"WHEN _key IS NULL THEN '{spec.key} is missing'")
    staged: list[str] = []
    for c in spec.columns:
        column_read, column_checks, column_staged = _staged_column(job, schema, c)
        read += column_read
        checks += column_checks
        staged.append(column_staged)
    cursor, cursor_raw = _cursor_exprs(job, schema, kind)
    # A cursor of its own is staged beside the rows; the usual one, the timestamp, is not staged twice.
    own_cursor = cursor != "_ts"
    if own_cursor:
        read += [f"{cursor} AS _cur", f"{cursor_raw} AS _cur_raw"]
    content = [_q(c) for c in spec.columns if c not in (spec.key, spec.cursor)]
    sql = _fill(sql_text("store/land_stage.sql"), STAGED=", ".join(staged), CURSOR="_cur, _cur_raw, " if own_cursor
                else "", CONTENT=", ".join(content) or "_key", CHECKS=" ".join(checks), READ=", ".join(read),
                READER=READER)
    params = {"cap": cap, "max_chars": job.settings.max_text_chars}
    if any("$salt" in o for o in staged):
        params["salt"] = job.salt
    return sql, params, ("_cur", "_cur_raw") if own_cursor else (cursor, cursor_raw)


def _staged_column(job: Landing, schema: pa.Schema, c: str) -> tuple[list[str], list[str], str]:
    """One landing column: the expressions that read it, the checks it must pass, and how it is stored."""
    spec = job.inp.spec
    src = _q(job.inp.source_columns[c])
    atype = schema.field(job.inp.source_columns[c]).type
    if c == spec.key:
        # A row nothing could be read from is keyed by its problem, which names its line: two stay two.
        problem_key = f", {_q(ROW_PROBLEM)}" if ROW_PROBLEM in schema.names else ""
        return [f"coalesce(CAST({src} AS VARCHAR){problem_key}) AS _key"], [], f"_key AS {_q(c)}"
    if c == spec.cursor:
        ts_setting = f"sources[{job.source}].mapping.{spec.name}.{spec.cursor}"
        return ([f"{_ts_expr(src, atype, ts_setting)} AS _ts", f"CAST({src} AS VARCHAR) AS _ts_raw"],
                [f"WHEN _ts_raw IS NULL THEN '{c} is missing'",
                 f"WHEN _ts IS NULL THEN '{c} is not a timestamp'",
                 f"WHEN NOT isfinite(_ts) THEN '{c} is infinite'",
                 f"WHEN _ts > $cap THEN '{c} is in the future (later than now + ingest.future_skew)'"],
                f"_ts_raw AS {_q(c)}")
    return _value_column(job, c, src, atype)


def _value_column(job: Landing, c: str, src: str, atype: pa.DataType) -> tuple[list[str], list[str], str]:
    """A landing column that is neither key nor time: bytes decoded, text checked for control characters,
    and the shape's text columns for blanks and length."""
    qc = _q(c)
    binary = pa.types.is_binary(atype) or pa.types.is_large_binary(atype)
    string = pa.types.is_string(atype) or pa.types.is_large_string(atype)
    text_column = c in set(getattr(job.inp.spec, "text_columns", ()))
    read: list[str] = []
    checks: list[str] = []
    if binary:
        read += [f"try(decode({src})) AS {qc}", f"{src} AS {_q(c + '__bytes')}"]
        checks.append(f"WHEN {qc} IS NULL AND {_q(c + '__bytes')} IS NOT NULL THEN '{c} is not valid UTF-8'")
    else:
        read.append(f"{src} AS {qc}")
    # One scan of a long text finds both control characters and anything the scrubber would look at;
    # the rare text it flags is then checked and scrubbed pattern by pattern.
    suspect = text_column and job.settings.scrub_pii and string
    if suspect:  # JSON text may also write an ASCII character as an escape
        maybe = f"{MAYBE_PII}|{MAYBE_ESCAPED}" if c in job.inp.spec.json_columns else MAYBE_PII
        read.append(f"regexp_matches({src}, '{CONTROL_CHARS}|{maybe}') AS {_q('_suspect_' + c)}")
    if string or binary:
        flagged = f"{_q('_suspect_' + c)} AND " if suspect else ""
        checks.append(f"WHEN {flagged}regexp_matches({qc}, '{CONTROL_CHARS}') THEN '{c} contains control characters'")
    if text_column:
        checks += [f"WHEN regexp_full_match({qc}, '{BLANK}') THEN '{c} is blank (whitespace only)'",
                   f"WHEN length({qc}) > $max_chars THEN '{c} is longer than ingest.max_text_chars "
                   f"({job.settings.max_text_chars})'"]
    return read, checks, _stored_value(job, c, binary, suspect)


def _stored_value(job: Landing, c: str, binary: bool, suspect: bool) -> str:
    """How a value column is stored: bytes that are not UTF-8 kept as escaped text, user ids hashed with
    the store's salt, text columns PII-scrubbed (only the flagged ones, where a scan flagged them)."""
    qc = _q(c)
    if binary:
        # keep what was read: the bytes, shown as text with escapes, where they are not UTF-8; scrubbed either way
        shown = f"coalesce({qc}, CAST({_q(c + '__bytes')} AS VARCHAR))"
        if c in set(getattr(job.inp.spec, "text_columns", ())) and job.settings.scrub_pii:
            shown = scrub_json_sql(shown) if c in job.inp.spec.json_columns else scrub_sql(shown)
        return f"{shown} AS {qc}"
    if c in set(getattr(job.inp.spec, "user_columns", ("user_id",))):
        return f"CASE WHEN {qc} IS NOT NULL THEN sha256($salt || CAST({qc} AS VARCHAR)) END AS {qc}"
    if c in set(getattr(job.inp.spec, "text_columns", ())) and job.settings.scrub_pii:
        scrubbed = scrub_json_sql(qc) if c in job.inp.spec.json_columns else scrub_sql(qc)  # JSON: its decoded strings
        return f"CASE WHEN {_q('_suspect_' + c)} THEN {scrubbed} ELSE {qc} END AS {qc}" if suspect \
            else f"{scrubbed} AS {qc}"
    return qc


def _cursor_exprs(job: Landing, schema: pa.Schema, kind: str) -> tuple[str, str]:
    """The cursor: the timestamp itself, or a column of its own (an id, ISO text, another timestamp), as
    (value, text) expressions over the read."""
    inp, spec = job.inp, job.inp.spec
    cur_src = _q(job.cursor_column) if job.cursor_column else ""
    if job.cursor_column is None:  # read whole every run: no cursor
        return "NULL::TIMESTAMP", "NULL::VARCHAR"
    if "ts_observed" in schema.names:  # a prepared shape: a load time stands in for a missing time
        return "CASE WHEN ts_observed THEN _ts END", "_ts_raw"
    # An integer cursor counts in the source's numbers, also when it is the time column (epoch seconds, staged
    # as the timestamp _ts); a file read as text (another file of the source gave integers): its numbers count.
    if kind == INTEGER:
        if pa.types.is_integer(schema.field(job.cursor_column).type):
            return f"CAST({cur_src} AS BIGINT)", f"CAST({cur_src} AS VARCHAR)"
        # a fractional number (epoch seconds) or text: its whole part, NULL when it is no finite number
        text = f"CAST({cur_src} AS VARCHAR)"
        return (f"coalesce(TRY_CAST({text} AS BIGINT), TRY_CAST(floor(TRY_CAST({text} AS DOUBLE)) AS BIGINT))",
                text)
    if job.cursor_column == inp.source_columns[spec.cursor]:  # staged already, as _ts and its text
        return "_ts", _q(spec.cursor)
    if kind == TEXT:
        return f"timezone('UTC', try_cast({cur_src} AS TIMESTAMPTZ))", f"CAST({cur_src} AS VARCHAR)"
    return _ts_expr(cur_src, schema.field(job.cursor_column).type, job.cursor_setting), f"CAST({cur_src} AS VARCHAR)"


def _read_position(con: duckdb.DuckDBPyConnection, table: str, kind: str, cap: datetime, cur: str, cur_raw: str
                   ) -> tuple[int, CursorPosition | None]:
    """Rows read, and the new cursor: the largest value read, never past now + future_skew. `cur` and
    `cur_raw` are the staged columns holding each row's cursor value and its text."""
    if kind == INTEGER:
        n, high = con.execute(f"SELECT count(*), max({cur}) FROM {table}").fetchone()
        return n, None if high is None else CursorPosition(str(high), kind)
    if kind == TEXT:
        n, high = con.execute(
            f"SELECT count(*), arg_max({cur_raw}, {cur}) FILTER (WHERE isfinite({cur}) AND {cur} <= $cap) "
            f"FROM {table}", {"cap": cap}).fetchone()
        return n, None if high is None else CursorPosition(high, kind)
    n, high = con.execute(
        f"SELECT count(*), max({cur}) FILTER (WHERE isfinite({cur}) AND {cur} <= $cap) FROM {table}", {"cap": cap}
    ).fetchone()
    return n, None if high is None else CursorPosition(high.isoformat(), kind)
