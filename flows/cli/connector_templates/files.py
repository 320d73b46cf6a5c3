"""`--kind files`: files of a format of your own, parsed record by record, incremental by file."""

CONNECTOR = r'''"""Read feedback rows from $name: files, one record after another, incremental by file.

Written by `alignloop connectors new $name --kind files`. It reads JSON Lines files (plain or .gz)
so it works as written; for a format of your own (an application's log lines, XML exports, ...)
replace `_records`, which turns one file into dictionaries, and keep the rest. (JSONL, JSON, CSV and
Parquet, local or on S3, need no new connector: use the built-in `files`.)

`path` is a file or a glob; `{table}` in it is the table a shape input reads (`exports/{table}/*.jsonl`).
The core tracks files, not cursors (`incremental = "files"`): it passes the (path, content hash) pairs
it has landed in `Window.loaded_files`, those files are skipped, and every row of a new or changed
file carries `_file` and `_file_hash`. A literal path, or the folder before the first wildcard, that
does not exist is an error naming the table; a glob that matches nothing yet gives no rows.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
from $base import ConnectorTerminalError, Window
from pydantic import BaseModel, ConfigDict, Field

_WILDCARD = re.compile(r"[*?\[]")
FILE_COLUMNS = ("_file", "_file_hash")


class ${cls}Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="A file or glob; '{table}' in it is replaced by the table a shape input reads.")
    batch_size: int = Field(10_000, ge=1, description="Rows per Arrow record batch.")
    timestamp_fields: tuple[str, ...] = Field(
        (), description="Fields holding ISO-8601 times, handed over as timestamps (the cursor field always is).")


def _parse_time(value: Any) -> datetime:
    """A naive UTC datetime from an ISO-8601 string (a trailing Z accepted) or epoch seconds."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).replace(tzinfo=None)
    parsed = datetime.fromisoformat(str(value).strip())
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


class $cls:
    """Reads the records of the files a window's table names, in bounded Arrow batches."""

    Settings: ClassVar[type[BaseModel]] = ${cls}Settings
    incremental: ClassVar[str] = "files"

    def __init__(self, settings: ${cls}Settings) -> None:
        self.settings = settings

    # ------------------------------------------------------------------ the format
    def _records(self, path: str) -> Iterator[dict[str, Any]]:
        """One file's records. Replace this for your format; a record that cannot be read is an error
        naming the file and its line."""
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as e:
                    raise ConnectorTerminalError(f"$name: {path} line {number} is not JSON ({e}); fix the file") from None
                if not isinstance(record, dict):
                    raise ConnectorTerminalError(f"$name: {path} line {number} is not a JSON object; fix the file")
                yield record

    # ------------------------------------------------------------------ files
    def list_files(self, table: str | None) -> list[str]:
        pattern = self.settings.path.replace("{table}", table if table is not None else "*")
        literal = _WILDCARD.split(pattern, maxsplit=1)[0]
        root = Path(literal if literal == pattern else (Path(literal).parent if not literal.endswith("/") else literal))
        if not root.exists():
            what = f" (table {table!r})" if table is not None and "{table}" in self.settings.path else ""
            raise ConnectorTerminalError(f"$name: {root} does not exist{what}; set options.path to the files, and "
                                         "check the table name in the source's mapping")
        return sorted(f for f in glob.glob(pattern, recursive=True) if Path(f).is_file())

    @staticmethod
    def _hash(path: str) -> str:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()

    # ------------------------------------------------------------------ the contract
    def check(self) -> None:
        self.list_files(None)

    def read(self, window: Window) -> Iterator[pa.RecordBatch]:
        tracking = window.loaded_files is not None
        for path in self.list_files(window.table):
            digest = self._hash(path) if tracking or "_file_hash" in window.columns else ""
            if tracking and (path, digest) in window.loaded_files:
                continue
            rows: list[dict[str, Any]] = []
            for record in self._records(path):
                if window.cursor_column and not self._in_window(record, window, path):
                    continue
                rows.append({**record, "_file": path, "_file_hash": digest})
                if len(rows) == self.settings.batch_size:
                    yield self._batch(rows, window, path)
                    rows = []
            if rows:
                yield self._batch(rows, window, path)

    def _in_window(self, record: dict[str, Any], window: Window, path: str) -> bool:
        value = record.get(window.cursor_column)
        if value is None:  # no time: only a window without bounds holds it
            return window.start is None and window.end is None
        ts = self._time(value, window.cursor_column, path)
        return (window.start is None or ts >= _naive(window.start)) and (window.end is None or ts < _naive(window.end))

    def _time(self, value: Any, name: str, path: str) -> datetime:
        try:
            return _parse_time(value)
        except (TypeError, ValueError, OverflowError):
            raise ConnectorTerminalError(f"$name: {path}: field {name!r} holds {str(value)[:40]!r}, not an ISO-8601 "
                                         "time; fix the file, or leave the field out of options.timestamp_fields") from None

    def _batch(self, rows: list[dict[str, Any]], window: Window, path: str) -> pa.RecordBatch:
        found = list(dict.fromkeys(k for row in rows for k in row))
        names = list(window.columns) or [k for k in found if k not in FILE_COLUMNS]
        if window.loaded_files is not None:  # the core is tracking files: tag every row with its file
            names += [c for c in FILE_COLUMNS if c not in names]
        missing = [n for n in (*names, window.cursor_column) if n and n not in found]
        if missing:
            have = ", ".join(k for k in found if k not in FILE_COLUMNS)
            raise ConnectorTerminalError(f"$name: {path} has no field {missing[0]!r} (it has {have}); check the column "
                                         "names in the source's mapping")
        times = {*self.settings.timestamp_fields, window.cursor_column}
        arrays = []
        for n in names:
            values = [row.get(n) for row in rows]
            if n in times:
                arrays.append(pa.array([None if v is None else self._time(v, n, path) for v in values], pa.timestamp("us")))
                continue
            try:
                arrays.append(pa.array(values))
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                # Records disagree on a field's type (text here, an object there): it goes over as JSON text.
                arrays.append(pa.array([v if v is None or isinstance(v, str) else json.dumps(v) for v in values]))
        return pa.RecordBatch.from_arrays(arrays, names=names)
'''

PROVIDER = r'''"""Contract provider for `$name`: the contract rows in a JSON Lines file, one folder per table.

The promises it is checked against are alignloop.connectors.testing's. Change it with the connector:
write the rows in your format. Files have no credentials: the options that must fail name a folder
that does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alignloop.connectors.testing import ContractRow, ContractSource


@contextmanager
def seeded_source(tmp_path: Path, rows: list[ContractRow]) -> Iterator[ContractSource]:
    folder = tmp_path / "exports" / "contract_rows"
    folder.mkdir(parents=True)
    half = len(rows) // 2  # two files, so reads cross a file boundary
    for name, part in (("part-1.jsonl", rows[:half]), ("part-2.jsonl", rows[half:])):
        lines = [json.dumps({"id": r.id, "ts": r.ts.isoformat() + "Z", "body": r.body}) for r in reversed(part)]
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    yield ContractSource(options={"path": str(tmp_path / "exports" / "{table}" / "*.jsonl"), "timestamp_fields": ["ts"]},
                         table="contract_rows", bad_options={"path": str(tmp_path / "missing" / "{table}" / "*.jsonl")})
'''
