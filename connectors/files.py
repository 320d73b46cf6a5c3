"""Read feedback from files: JSONL/JSON, CSV and Parquet (JSON and CSV plain or gzip), local or on S3.

`path` names one file or a glob (`logs/*.jsonl.gz`, `s3://bucket/feedback/**/*.parquet`); a `{table}`
in it is replaced by the table a shape input reads, so one source can hold several inputs
(`exports/{table}/*.csv`). Files need no cursor column to be incremental: every batch carries the
file's path and content hash (`_file`, `_file_hash`) and each row's content hash (`_row_hash`); the
core records which (path, hash) pairs it has landed and passes them back in `Window.loaded_files`,
so a file already loaded is not read again and a new or changed file is. (A window without
`loaded_files` reads every file and returns just the columns it asks for.) Map a shape's key column
to `_row_hash` when the files have no natural key: re-reading a file then never duplicates a row.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal

import duckdb
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from alignloop.connectors.base import (
    ConnectorError,
    ConnectorTerminalError,
    ConnectorTransientError,
    Window,
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
        source = _source_sql(fmt)
        params: dict[str, object] = {"path": name}
        try:
            present = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}", {"path": name}).fetchall()]
        except duckdb.Error as e:
            raise self._read_error(e, name, fmt) from None
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
            if c in present:
                selected.append(f"t.{quote_identifier(c)}")
            else:
                selected.append(f"{expressions[c]} AS {c}")
                if c == "_file":
                    params["file"] = name
                elif c == "_file_hash":
                    params["file_hash"] = digest
        where, bounds = window_bounds(window)
        params.update(bounds)
        # Unsorted (see Connector.read): rows stream in file order, so memory stays flat however large a file is.
        sql = f"SELECT {', '.join(selected)} FROM {source} AS t WHERE {where}"
        try:
            reader = con.execute(sql, params).to_arrow_reader(self.settings.batch_size)
            yield from reader
        except duckdb.Error as e:
            raise self._read_error(e, name, fmt) from None

    def _read_error(self, e: Exception, name: str, fmt: str) -> ConnectorError:
        if _is_remote(name) and isinstance(e, (duckdb.HTTPException, duckdb.IOException)):
            return self._remote_error(e, f"reading {name}")
        return ConnectorTerminalError(
            f"files: {name} could not be read as {fmt} ({_first_line(e)}); "
            f"set options.format to the file's format (jsonl, json, csv or parquet) or fix the file"
        )


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


def _source_sql(fmt: str) -> str:
    """The table function reading one file; its path is the bound parameter $path."""
    if fmt == "jsonl":
        return "read_json($path, format = 'newline_delimited')"
    if fmt == "json":
        return "read_json($path, format = 'auto')"
    if fmt == "csv":
        return "read_csv($path, header = true)"  # exports name their columns; never guess a header away
    return "read_parquet($path)"


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
