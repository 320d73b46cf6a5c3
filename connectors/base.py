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
    columns to read (all of them when empty). `loaded_files` holds the (path, content hash) pairs
    already landed, for connectors that read files (`incremental = "files"`): they skip those files
    and tag their rows with `_file` and `_file_hash`, which the core records with the rows.
    """

    table: str
    cursor_column: str
    start: datetime | None = None
    end: datetime | None = None
    columns: tuple[str, ...] = field(default_factory=tuple)
    loaded_files: frozenset[tuple[str, str]] = field(default_factory=frozenset)


@runtime_checkable
class Connector(Protocol):
    """The contract every connector fulfils."""

    Settings: ClassVar[type[BaseModel]]

    def __init__(self, settings: Any) -> None: ...

    def check(self) -> None:
        """Raise ConnectorTerminalError (secret-free message) when the source cannot be used."""

    def read(self, window: Window) -> Iterator[pa.RecordBatch]:
        """Yield the rows of the window as Arrow record batches, ordered by the cursor column."""


def quote_identifier(name: str) -> str:
    """Quote a table or column name for SQL (double quotes, embedded quotes doubled).

    A dotted name (`schema.table`) is quoted part by part.
    """
    if not name or "\x00" in name:
        raise ConnectorTerminalError(f"invalid identifier {name!r}: use a non-empty table or column name")
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def available_connectors() -> dict[str, Any]:
    """Connector names registered under the entry-point group, mapped to their entry points."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_connector(name: str) -> type[Connector]:
    """The connector class registered as `name`."""
    found = available_connectors()
    if name not in found:
        known = ", ".join(sorted(found)) or "none installed"
        raise ConnectorTerminalError(
            f"unknown connector {name!r} (available: {known}); "
            f"a connector is registered under the entry-point group {ENTRY_POINT_GROUP!r}"
        )
    return found[name].load()
