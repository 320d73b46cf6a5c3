"""Read feedback from files: JSONL/JSON, CSV and Parquet (JSON and CSV plain or gzip), local or on S3.

`path` names one file or a glob (`logs/*.jsonl.gz`, `s3://bucket/feedback/**/*.parquet`); a `{table}`
in it is replaced by the table a shape input reads, so one source can hold several inputs
(`exports/{table}/*.csv`). Files need no cursor column to be incremental: every batch carries the
file's path and content hash (`_file`, `_file_hash`) and each row's content hash (`_row_hash`); the
core records which (path, hash) pairs it has landed and passes them back in `Window.loaded_files`,
so a file already loaded is not read again and a new or changed file is. (A window without
`loaded_files` reads every file and returns just the columns it asks for.) Map a shape's key column
to `_row_hash` when the files have no natural key: re-reading a file then never duplicates a row.

A column DuckDB types JSON (its values differ in type from row to row) comes as JSON documents
(`arrow.json`, see connectors/base.py), so no string keeps its quotes. A JSONL file DuckDB refuses
because of a few lines (invalid UTF-8, broken JSON, a line that is not an object) is read again from a
readable copy, each such row carrying its reason in `_row_problem`: one bad line spoils one row. So is
a JSON file (an array: one row per element, named by its index; a file of one object per line: by line),
and a CSV file with bytes that are not UTF-8, each row holding one marked with it. A JSON file whose
syntax breaks, so that its rows cannot be told apart, is one error naming the file, line and column.
"""

from __future__ import annotations

import glob as globlib
import gzip
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from alignloop.connectors.base import (
    ConnectorError,
    ConnectorTerminalError,
    ConnectorTransientError,
    ROW_PROBLEM,
    Window,
    mark_json,
    quote_identifier,
    window_bounds,
)

FILE_COLUMNS = ("_file", "_file_hash", "_row_hash")

_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "csv",
             ".parquet": "parquet", ".pq": "parquet"}
_GLOB_CHARS = re.compile(r"[*?\[]")


class FilesSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="A file or glob, local or s3://bucket/...; '{table}' is replaced by the input's table.")
    format: Literal["auto", "jsonl", "json", "csv", "parquet"] = Field(
        "auto", description="File format; auto tells it from the name (.jsonl, .json, .csv, .parquet, plus .gz)."
    )
    batch_size: int = Field(50_000, ge=1, description="Rows per Arrow record batch.")
    endpoint: str | None = Field(None, description="S3 endpoint host[:port] for S3-compatible stores (default AWS).")
    region: str = Field("us-east-1", description="S3 region.")
    url_style: Literal["vhost", "path"] = Field("vhost", description="S3 URL style; most self-hosted stores need path.")
    use_ssl: bool = Field(True, description="Talk HTTPS to the S3 endpoint.")
    access_key_id: SecretStr | None = Field(None, description="S3 access key id; write it as ${ENV_VAR}.")
    secret_access_key: SecretStr | None = Field(None, description="S3 secret key; write it as ${ENV_VAR}.")
    session_token: SecretStr | None = Field(None, description="S3 session token, for temporary credentials.")


def _is_remote(path: str) -> bool:
    return "://" in path


def _file_format(name: str, configured: str) -> str:
    if configured != "auto":
        return configured
    stem = name[:-3] if name.endswith(".gz") else name
    fmt = _SUFFIXES.get(Path(stem).suffix.lower())
    if fmt is None:
        raise ConnectorTerminalError(
            f"files: cannot tell the format of {name} from its name; set options.format to jsonl, json, csv or parquet"
        )
    return fmt


class FilesConnector:
    """Reads the rows of files not yet loaded, one file at a time, in bounded Arrow batches."""

    Settings: ClassVar[type[BaseModel]] = FilesSettings
    # The core records (path, content hash) of landed files and reads whole new files, not cursor windows.
    incremental: ClassVar[str] = "files"

    def __init__(self, settings: FilesSettings) -> None:
        self.settings = settings

    # ------------------------------------------------------------------ connection
    def _connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(config={"threads": 1})
        if _is_remote(self.settings.path):
            s = self.settings
            _load_httpfs(con)
            # Values are bound; secrets live only inside this in-memory connection.
            settings = {
                "s3_region": s.region, "s3_url_style": s.url_style, "s3_use_ssl": s.use_ssl,
                "s3_endpoint": s.endpoint or "s3.amazonaws.com",
                "s3_access_key_id": s.access_key_id.get_secret_value() if s.access_key_id else "",
                "s3_secret_access_key": s.secret_access_key.get_secret_value() if s.secret_access_key else "",
                "s3_session_token": s.session_token.get_secret_value() if s.session_token else "",
            }
            for name, value in settings.items():
                con.execute(f"SET {name} = $value", {"value": value})
        return con

    def _remote_error(self, e: Exception, what: str) -> ConnectorError:
        """One line for a failed S3 call, with no key in it: terminal for refusals, transient for the network."""
        text = _first_line(e)
        for secret in (self.settings.access_key_id, self.settings.secret_access_key, self.settings.session_token):
            if secret is not None and secret.get_secret_value():
                text = text.replace(secret.get_secret_value(), "***")
        lowered = text.lower()
        if any(code in lowered for code in ("403", "forbidden", "accessdenied", "signature", "invalidaccesskeyid",
                                            "401", "404", "nosuchbucket", "not found")):
            return ConnectorTerminalError(
                f"files: {what}: the S3 store refused the request ({text}); check options.access_key_id, "
                f"options.secret_access_key, options.endpoint and the bucket name"
            )
        return ConnectorTransientError(f"files: {what}: the S3 store is unreachable ({text}); check options.endpoint")

    # ------------------------------------------------------------------ listing and hashing
    def _pattern(self, table: str | None) -> str:
        return self.settings.path.replace("{table}", table if table is not None else "*")

    def list_files(self, table: str | None = None) -> list[str]:
        """The files the path names for `table`, sorted; a literal path that does not exist is an error."""
        pattern = self._pattern(table)
        if _is_remote(pattern):
            con = self._connect()
            try:
                files = [r[0] for r in con.execute("SELECT file FROM glob($p) ORDER BY file", {"p": pattern}).fetchall()]
            except duckdb.Error as e:
                raise self._remote_error(e, f"listing {pattern}") from None
            finally:
                con.close()
        else:
            files = sorted(f for f in globlib.glob(pattern, recursive=True) if Path(f).is_file())
        if not files and not _GLOB_CHARS.search(pattern):
            raise ConnectorTerminalError(f"files: {pattern} does not exist; set options.path to a file or a glob")
        return files

    def file_hash(self, con: duckdb.DuckDBPyConnection, name: str) -> str:
        """sha256 of the file's bytes (streamed for local files)."""
        if not _is_remote(name):
            digest = hashlib.sha256()
            with open(name, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            return digest.hexdigest()
        try:
            return con.execute("SELECT sha256(content) FROM read_blob($p)", {"p": name}).fetchone()[0]
        except duckdb.Error as e:
            raise self._remote_error(e, f"reading {name}") from None

    # ------------------------------------------------------------------ the contract
    def check(self) -> None:
        self.list_files(None)

    def read(self, window: Window) -> Iterator[pa.RecordBatch]:
        files = self.list_files(window.table)
        tracking = window.loaded_files is not None
        con = self._connect()
        try:
            for name in files:
                digest = self.file_hash(con, name) if tracking or "_file_hash" in window.columns else ""
                if tracking and (name, digest) in window.loaded_files:
                    continue
                yield from self._read_file(con, name, digest, window)
        finally:
            con.close()

    def _read_file(
        self, con: duckdb.DuckDBPyConnection, name: str, digest: str, window: Window
    ) -> Iterator[pa.RecordBatch]:
        fmt = _file_format(name, self.settings.format)
        yielded = 0
        try:
            for batch in self._select(con, name, digest, window, fmt, name):
                yielded += batch.num_rows
                yield batch
            return
        except _Unparsed as e:
            # A file the core tracks loses only its unreadable rows (quarantined by line or row), never the others.
            if window.loaded_files is None or fmt == "parquet":
                raise ConnectorTerminalError(str(e)) from None
            failure = e
        repaired = self._repaired(con, name, fmt)
        if repaired is None:  # no row a JSON object, or no byte that is not UTF-8: the file is not what it claims
            raise ConnectorTerminalError(str(failure)) from None
        path, marked = repaired
        try:
            if not path.stat().st_size:  # an empty array, or no line but blank ones: no rows
                return
            row = 0  # rows of the copy, in file order; those yielded before DuckDB gave up are not yielded again
            for batch in self._select(con, name, digest, window, fmt, str(path), copy=True):
                start, row = row, row + batch.num_rows
                if row <= yielded:
                    continue
                if start < yielded:
                    batch, start = batch.slice(yielded - start), yielded
                yield marked(batch, start)
        finally:
            path.unlink(missing_ok=True)

    def _repaired(self, con: duckdb.DuckDBPyConnection, name: str, fmt: str) -> tuple[Path, Marker] | None:
        if fmt == "csv":
            return self._repaired_csv(con, name)
        if fmt == "jsonl":
            return _repaired_jsonl(name, self._lines(con, name))
        return _repaired_json(name, b"".join(self._lines(con, name)))

    def _select(self, con: duckdb.DuckDBPyConnection, name: str, digest: str, window: Window, fmt: str,
                read_path: str, copy: bool = False) -> Iterator[pa.RecordBatch]:
        """The window's rows of file `name`, read from `read_path`: the file, or (`copy`) a readable copy of it,
        JSONL for a JSON file."""
        source = _source_sql(fmt, copy)
        params: dict[str, object] = {"path": read_path}
        try:
            described = con.execute(f"DESCRIBE SELECT * FROM {source}", {"path": read_path}).fetchall()
        except duckdb.Error as e:
            raise self._read_error(e, name, fmt) from None
        present = [r[0] for r in described]
        # Columns DuckDB typed JSON (values of several types), anywhere inside them: decoded by the core.
        json_columns = {r[0] for r in described if "JSON" in str(r[1])}
        wanted = list(window.columns or present)
        if window.loaded_files is not None:  # the core is tracking files: tag every row with its file
            wanted += [c for c in ("_file", "_file_hash") if c not in wanted]
        cursor_columns = [window.cursor_column] if window.cursor_column else []  # a source may have no cursor
        missing = [c for c in (*wanted, *cursor_columns) if c not in present and c not in FILE_COLUMNS]
        if missing:
            raise ConnectorTerminalError(
                f"files: {name} has no column {missing[0]!r} (columns: {', '.join(present)}); "
                f"check the column names in the source's mapping"
            )
        expressions = {
            "_file": "$file", "_file_hash": "$file_hash",
            # Over every column of the row, so the same row in a re-read file gets the same key.
            "_row_hash": "md5(CAST(to_json(t) AS VARCHAR))",
        }
        selected = []
        for c in wanted:
            if c in json_columns:
                selected.append(f"CAST(to_json(t.{quote_identifier(c)}) AS VARCHAR) AS {quote_identifier(c)}")
            elif c in present:
                selected.append(f"t.{quote_identifier(c)}")
            else:
                selected.append(f"{expressions[c]} AS {c}")
                if c == "_file":
                    params["file"] = name
                elif c == "_file_hash":
                    params["file_hash"] = digest
        where, bounds = window_bounds(window)
        params.update(bounds)
        marked = [c for c in wanted if c in json_columns]
        # Unsorted (see Connector.read): rows stream in file order, so memory stays flat however large a file is.
        sql = f"SELECT {', '.join(selected)} FROM {source} AS t WHERE {where}"
        try:
            reader = con.execute(sql, params).to_arrow_reader(self.settings.batch_size)
            for batch in reader:
                yield mark_json(batch, marked) if marked else batch
        # What DuckDB meets after the first batch comes through Arrow's stream, as OSError.
        except (duckdb.Error, OSError, pa.ArrowException) as e:
            raise self._read_error(e, name, fmt) from None

    def _repaired_csv(self, con: duckdb.DuckDBPyConnection, name: str) -> tuple[Path, Marker] | None:
        """A readable copy of a CSV file with bytes that are not UTF-8, each such byte written as a noncharacter
        and its hex digits (nothing a delimiter, quote or line end), and what turns those back into \\xNN text in
        the rows read, marking each with its problem. None: the file has no such byte, or has the noncharacter
        itself."""
        fd, tmp = tempfile.mkstemp(suffix=".csv", prefix="alignloop-")
        found = False
        with os.fdopen(fd, "wb") as out:
            for line in self._lines(con, name):
                text = line.decode(errors="surrogateescape")
                if _NOT_UTF8 in text:
                    found = False
                    break
                fixed = _SURROGATES.sub(lambda m: f"{_NOT_UTF8}{ord(m.group()) - 0xDC00:02x}", text)
                found = found or fixed != text
                out.write(fixed.encode())
        if not found:
            os.unlink(tmp)
            return None

        def marked(batch: pa.RecordBatch, start: int) -> pa.RecordBatch:
            marks: list[str | None] = [None] * batch.num_rows
            for i, field in enumerate(batch.schema):
                if not pa.types.is_string(field.type) or field.name in FILE_COLUMNS:
                    continue
                hit = pc.match_substring(batch.column(i), _NOT_UTF8).to_pylist()
                if not any(hit):
                    continue
                for r in (r for r, h in enumerate(hit) if h):
                    marks[r] = (f"row {start + r + 1} of {Path(name).name} is not valid UTF-8 "
                                "(its bytes are kept as \\xNN escapes)")
                shown = pc.replace_substring_regex(batch.column(i), _NOT_UTF8 + "([0-9a-f]{2})", "\\\\x\\1")
                batch = batch.set_column(i, field, shown)
            return batch.append_column(ROW_PROBLEM, pa.array(marks, pa.string()))
        return Path(tmp), marked

    def _lines(self, con: duckdb.DuckDBPyConnection, name: str) -> Iterator[bytes]:
        """The file's lines as bytes (gunzipped when its name ends in .gz)."""
        if _is_remote(name):
            try:
                data = con.execute("SELECT content FROM read_blob($p)", {"p": name}).fetchone()[0]
            except duckdb.Error as e:
                raise self._remote_error(e, f"reading {name}") from None
            yield from io.BytesIO(gzip.decompress(data) if name.endswith(".gz") else data)
            return
        with (gzip.open(name, "rb") if name.endswith(".gz") else open(name, "rb")) as f:
            yield from f

    def _read_error(self, e: Exception, name: str, fmt: str) -> ConnectorError:
        text = _first_line(e)  # an error from Arrow's stream is an OSError holding DuckDB's words
        if _is_remote(name) and (isinstance(e, (duckdb.HTTPException, duckdb.IOException))
                                 or text.startswith(("HTTP Error", "IO Error"))):
            return self._remote_error(e, f"reading {name}")
        unparsed = isinstance(e, duckdb.InvalidInputException) or text.startswith("Invalid Input Error") or (
            isinstance(e, duckdb.BinderException) and "non-record JSON" in str(e))
        kind = _Unparsed if unparsed else ConnectorTerminalError
        return kind(
            f"files: {name} could not be read as {fmt} ({_first_line(e)}); "
            f"set options.format to the file's format (jsonl, json, csv or parquet) or fix the file"
        )


Marker = Callable[[pa.RecordBatch, int], pa.RecordBatch]
# Stands for a byte that is not UTF-8 in a readable copy of a CSV file: a noncharacter, which text does not use.
_NOT_UTF8 = "\ufdd0"
_SURROGATES = re.compile("[\udc80-\udcff]")
_JSON_SPACE = re.compile(r"[ \t\n\r]*")


class _Unparsed(ConnectorTerminalError):
    """DuckDB could not parse a file (a line of invalid UTF-8, or of broken JSON)."""


def _repaired_jsonl(name: str, lines: Iterable[bytes]) -> tuple[Path, Marker] | None:
    """A readable copy of a JSONL file DuckDB refused, and what marks each row of the copy read with why its
    line was unreadable (blank lines are left out of the copy). A line of invalid UTF-8 keeps its values,
    the bytes written as \\xNN escapes; a line that is not a JSON object becomes an empty row. None: no line
    is a JSON object."""
    shown = Path(name).name
    return _copy(_readable_line(line, f"line {number} of {shown}")
                 for number, line in enumerate(lines, start=1) if line.strip())


def _repaired_json(name: str, data: bytes) -> tuple[Path, Marker] | None:
    """A readable JSONL copy of a JSON file DuckDB refused (`data`: its bytes), marked as `_repaired_jsonl`'s.
    An array gives one row per element, named by its index (from 0) in the reasons; objects one after another
    (one object, or one per line) give one row each, named by the line it starts on. A row that is not an
    object is an empty row; one of invalid UTF-8 keeps its values, the bytes as \\xNN escapes. None: no row
    is an object. JSON whose syntax breaks, so that its rows cannot be told apart, is one error naming where,
    unless the file holds an object per line: then each line is a row, as in a JSONL file."""
    text = data.decode(errors="surrogateescape")
    start = _space(text, 1 if text.startswith("\ufeff") else 0)
    shown = Path(name).name
    try:
        if text.startswith("[", start):
            return _copy(_array_rows(text, start, shown))
        try:
            return _copy(_value_rows(text, start, shown))
        except json.JSONDecodeError:
            if not _one_per_line(text):
                raise
        return _repaired_jsonl(name, io.BytesIO(data))
    except json.JSONDecodeError as e:
        raise ConnectorTerminalError(
            f"files: {name} is not valid JSON at line {e.lineno}, column {e.colno} ({e.msg}), so its rows cannot "
            f"be told apart; fix the file there") from None


def _array_rows(text: str, pos: int, shown: str) -> Iterator[tuple[bytes, str | None]]:
    """Each element of the JSON array opening at text[pos] as a JSONL line, and why it could not be read as a
    row (None: it can). Raises json.JSONDecodeError where the array's syntax breaks."""
    decoder = json.JSONDecoder()
    pos = _space(text, pos + 1)
    closed = text.startswith("]", pos)
    index = 0
    while not closed:
        value, end = decoder.raw_decode(text, pos)
        yield _readable_value(value, text[pos:end], f"element {index} of {shown}")
        index, pos = index + 1, _space(text, end)
        closed = text.startswith("]", pos)
        if not closed:
            if not text.startswith(",", pos):
                raise json.JSONDecodeError("Expecting ',' delimiter or ']'", text, pos)
            pos = _space(text, pos + 1)
    if _space(text, pos + 1) != len(text):
        raise json.JSONDecodeError("Extra data", text, _space(text, pos + 1))


def _value_rows(text: str, pos: int, shown: str) -> Iterator[tuple[bytes, str | None]]:
    """The JSON values written one after another from text[pos], each as `_array_rows` gives an element."""
    decoder = json.JSONDecoder()
    line = 1 + text.count("\n", 0, pos)
    while pos < len(text):
        value, end = decoder.raw_decode(text, pos)
        yield _readable_value(value, text[pos:end], f"line {line} of {shown}")
        line += text.count("\n", pos, _space(text, end))
        pos = _space(text, end)


def _one_per_line(text: str) -> bool:
    """Whether the first line that is not blank is a JSON object on its own (the file is JSON Lines)."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    try:
        return isinstance(json.loads(first), dict)
    except ValueError:
        return False


def _readable_value(value: Any, raw: str, where: str) -> tuple[bytes, str | None]:
    """One decoded JSON value (`raw`: its text) as a JSONL line DuckDB can read, and why it is no row as written
    (None: it is). Valid JSON text holds no line break outside its whitespace, so a value written over several
    lines is the same value on one."""
    if not isinstance(value, dict):
        return b"{}", f"{where} is not a JSON object (a {type(value).__name__})"
    if not _SURROGATES.search(raw):
        return raw.replace("\r", " ").replace("\n", " ").encode(), None
    return json.dumps(_escaped(value)).encode(), f"{where} is not valid UTF-8 (its bytes are kept as \\xNN escapes)"


def _copy(rows: Iterable[tuple[bytes, str | None]]) -> tuple[Path, Marker] | None:
    """The rows (a JSONL line and its problem, or None) written to a temporary file, and what marks each row
    read from it with its problem. None: no row is a JSON object (the file is empty when there is no row)."""
    fd, tmp = tempfile.mkstemp(suffix=".jsonl", prefix="alignloop-")
    problems: dict[int, str] = {}
    row = objects = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for fixed, problem in rows:
                if problem is not None:
                    problems[row] = problem
                objects += fixed != b"{}"
                out.write(fixed + b"\n")
                row += 1
    except BaseException:
        os.unlink(tmp)
        raise
    if row and not objects:
        os.unlink(tmp)
        return None

    def marked(batch: pa.RecordBatch, start: int) -> pa.RecordBatch:
        marks = [problems.get(start + i) for i in range(batch.num_rows)]
        return batch.append_column(ROW_PROBLEM, pa.array(marks, pa.string()))
    return Path(tmp), marked


def _space(text: str, pos: int) -> int:
    """Where the JSON whitespace from `pos` ends."""
    return _JSON_SPACE.match(text, pos).end()


def _readable_line(line: bytes, where: str) -> tuple[bytes, str | None]:
    """One JSONL line as DuckDB can read it, and why the line as written could not be read (None: it can);
    a line that parses is read as `_readable_value` reads an element."""
    text = line.rstrip(b"\r\n").decode(errors="surrogateescape")
    try:
        value = json.loads(text)
    except ValueError as e:
        return b"{}", f"{where} is not valid JSON ({e.msg}, column {e.colno})"
    return _readable_value(value, text, where)


def _escaped(value: Any) -> Any:
    """A decoded JSON value with the bytes that were not UTF-8 (held as surrogates) written as \\xNN text."""
    if isinstance(value, str):
        try:
            raw = value.encode(errors="surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate the line wrote as a JSON escape
            raw = value.encode(errors="backslashreplace")
        return raw.decode(errors="backslashreplace")
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    return value


def _load_httpfs(con: duckdb.DuckDBPyConnection) -> None:
    """Load DuckDB's httpfs from the duckdb-extension-httpfs wheel (DuckDB cannot download it offline)."""
    try:
        import duckdb_extension_httpfs
    except ImportError:
        raise ConnectorTerminalError(
            "files: s3:// paths need the duckdb-extension-httpfs package; pip install duckdb-extension-httpfs==1.5.5"
        ) from None
    root = Path(duckdb_extension_httpfs.__file__).parent
    found = sorted(root.rglob("httpfs.duckdb_extension"))
    if not found:
        raise ConnectorTerminalError(f"files: no httpfs.duckdb_extension inside {root}; reinstall duckdb-extension-httpfs")
    con.load_extension(str(found[0]))  # straight from the wheel: nothing is copied into ~/.duckdb


def _source_sql(fmt: str, copy: bool = False) -> str:
    """The table function reading one file, or (`copy`) the readable copy made of it, whose types are told from
    every row: a value of another type than the first rows' is a value of a JSON column, not an error.
    Its path is the bound parameter $path."""
    if copy and fmt != "csv":
        return "read_json($path, format = 'newline_delimited', records = 'true', sample_size = -1)"
    if fmt == "jsonl":  # every line a row of named columns: a line that is not an object is an error, not a row
        return "read_json($path, format = 'newline_delimited', records = 'true')"
    if fmt == "json":  # an array of objects, or objects one after another: one that is not an object is an error
        return "read_json($path, format = 'auto', records = 'true')"
    if fmt == "csv":
        # Exports name their columns: never guess a header away. CSV has no types: every value is read as the
        # text it is ("007" stays "007"), and the shapes read numbers and times from it as they do from JSON text.
        return "read_csv($path, header = true, all_varchar = true)"
    return "read_parquet($path)"


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
