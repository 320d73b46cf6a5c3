"""What a connector is: a small object that reads rows from where feedback lives.

A connector moves bytes and knows nothing of feedback semantics. It never writes state (the core
owns cursors) and never builds SQL from strings: identifiers are quoted and values are bound.
A new connector is one file plus one entry-point line in the `alignloop.connectors` group.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol, runtime_checkable

import pyarrow as pa
from pydantic import BaseModel

ENTRY_POINT_GROUP = "alignloop.connectors"


class ConnectorError(Exception):
    """Base of connector failures. `transient` tells the core whether a retry can help."""

    transient: bool = False


class ConnectorTransientError(ConnectorError):
    """The source is unreachable or busy right now; retrying later may work."""

    transient = True


class ConnectorTerminalError(ConnectorError):
    """Bad credentials, a missing table or column, no permission: retrying will not help."""


@dataclass(frozen=True)
class Window:
    """Rows of `table` whose `cursor_column` lies in the half-open interval [start, end).

    `start=None` means from the beginning; `end=None` means up to now. `columns` lists the source
    columns to read (all of them when empty). `cursor_column=None`: the source has no cursor; read
    every row (start and end are then None). `loaded_files` holds the (path, content hash) pairs
    already landed, for connectors that read files (`incremental = "files"`); when it is given they
    skip those files and tag their rows with `_file` and `_file_hash`, which the core records with
    the rows, and may add `_row_problem`: why a row could not be read as its file's format (a line
    that is not valid UTF-8 or not JSON), NULL for the rows read as they are; the core quarantines
    those rows with that reason, and the rest of the file lands.

    A column whose values are of several types (text in most rows, an object or a number in some)
    comes as JSON documents, marked with Arrow's `arrow.json` type (`mark_json`): its text values
    still carry their JSON quotes, and the core decodes every value.
    """

    table: str
    cursor_column: str | None
    start: datetime | None = None
    end: datetime | None = None
    columns: tuple[str, ...] = field(default_factory=tuple)
    loaded_files: frozenset[tuple[str, str]] | None = None


@runtime_checkable
class Connector(Protocol):
    """The contract every connector fulfils."""

    Settings: ClassVar[type[BaseModel]]

    def __init__(self, settings: Any) -> None: ...

    def check(self) -> None:
        """Raise ConnectorTerminalError (secret-free message) when the source cannot be used."""

    def read(self, window: Window) -> Iterator[pa.RecordBatch]:
        """Yield the rows of the window as Arrow record batches, in any order.

        The core needs no order: it lands a window in one transaction and takes the cursor's new
        position as the largest value read. Sorting a large window costs the source (or DuckDB) a
        sort of every row read, in time and memory, for nothing."""


ROW_PROBLEM = "_row_problem"


def mark_json(batch: pa.RecordBatch, names: Any) -> pa.RecordBatch:
    """The batch with the named string columns marked as JSON documents (`arrow.json`), one per value."""
    for name in names:
        i = batch.schema.get_field_index(name)
        if i < 0:
            continue
        column = batch.column(i)
        if isinstance(column.type, pa.JsonType):
            continue
        marked = pa.ExtensionArray.from_storage(pa.json_(), column.cast(pa.string()))
        batch = batch.set_column(i, pa.field(name, marked.type), marked)
    return batch


def json_columns(description: Any) -> list[str]:
    """The columns a DuckDB result (its `description`) types JSON: their values are JSON documents."""
    return [d[0] for d in description or () if str(d[1]) == "JSON"]


def quote_identifier(name: str) -> str:
    """Quote a table or column name for SQL (double quotes, embedded quotes doubled).

    A dotted name (`schema.table`) is quoted part by part.
    """
    if not name or "\x00" in name:
        raise ConnectorTerminalError(f"invalid identifier {name!r}: use a non-empty table or column name")
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def window_bounds(window: Window) -> tuple[str, dict[str, Any]]:
    """A window's cursor bounds as a DuckDB condition with $start/$end parameters, and those parameters.
    "TRUE" with none when the window has no cursor column (the source is read whole); a window with a
    cursor and no bounds keeps every row, NULL cursors too."""
    where, params = ["TRUE"], {}
    if window.cursor_column:
        cursor = quote_identifier(window.cursor_column)
        if window.start is not None:
            where.append(f"{cursor} >= $start")
            params["start"] = window.start
        if window.end is not None:
            where.append(f"{cursor} < $end")
            params["end"] = window.end
        if len(where) == 1:  # unbounded: still name the cursor, so a missing one fails here, not later
            where.append(f"{cursor} IS NOT DISTINCT FROM {cursor}")
    return " AND ".join(where), params


@dataclass(frozen=True)
class ConnectorInfo:
    """One registered connector: where it comes from and, when it cannot be loaded, why."""

    name: str
    package: str          # the distribution that registers it ("?" when unknown)
    target: str           # "module:Class"
    error: str | None = None


def _entry_points() -> list[Any]:
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def available_connectors() -> dict[str, Any]:
    """Connector names registered under the entry-point group, mapped to their entry points.

    Listing never imports a connector, so a broken plugin cannot hide the others.
    """
    return {ep.name: ep for ep in _entry_points()}


def _package_of(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return getattr(dist, "name", None) or "?"


def _check_connector_class(name: str, obj: Any) -> type[Connector]:
    settings = getattr(obj, "Settings", None)
    missing = [m for m in ("check", "read") if not callable(getattr(obj, m, None))]
    if not isinstance(obj, type) or not (isinstance(settings, type) and issubclass(settings, BaseModel)) or missing:
        raise ConnectorTerminalError(
            f"connector {name!r} is not a connector class: it needs a pydantic `Settings` class and "
            f"check()/read() methods (see connectors/base.py)"
        )
    return obj


def load_connector(name: str) -> type[Connector]:
    """The connector class registered as `name`; a plugin that fails to import is named in the error."""
    found = available_connectors()
    if name not in found:
        known = ", ".join(sorted(found)) or "none installed"
        raise ConnectorTerminalError(
            f"unknown connector {name!r} (available: {known}); "
            f"a connector is registered under the entry-point group {ENTRY_POINT_GROUP!r}"
        )
    ep = found[name]
    try:
        obj = ep.load()
    except Exception as e:  # a plugin's import error is its own; report it by name, keep ours running
        first = (str(e).splitlines() or [""])[0]
        raise ConnectorTerminalError(
            f"connector {name!r} from package {_package_of(ep)} ({ep.value}) failed to load: "
            f"{type(e).__name__}: {first}; fix or reinstall that package, or uninstall it"
        ) from None
    return _check_connector_class(name, obj)


def connector_infos() -> list[ConnectorInfo]:
    """Every registered connector, each loaded on its own: broken ones carry their error."""
    infos = []
    for ep in _entry_points():
        try:
            load_connector(ep.name)
            error = None
        except ConnectorTerminalError as e:
            error = str(e)
        infos.append(ConnectorInfo(ep.name, _package_of(ep), ep.value, error))
    return infos
