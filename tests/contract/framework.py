"""The connector contract: what every installed connector promises, and how a connector joins the suite.

A connector takes part by having a *provider*: a module `tests/contract/providers/<name>.py` (or a
module registered under the entry-point group `alignloop.contract_providers`, for connectors packaged
elsewhere) with one function:

    @contextmanager
    def seeded_source(tmp_path: Path, rows: list[ContractRow]) -> Iterator[ContractSource]: ...

It writes `rows` into a real source the connector reads (a file, a table in a server; a test-only
stand-in driver where the real service cannot be reached, saying so in `stand_in`), yields where
they are, and cleans up afterwards. The suite then checks the promises in test_contract.py.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

PROVIDER_GROUP = "alignloop.contract_providers"
T0 = datetime(2026, 10, 1, 12, 0, 0)


@dataclass(frozen=True)
class ContractRow:
    id: str
    ts: datetime  # naive, UTC
    body: str


# Six rows an hour apart; bodies with quotes, unicode and an empty string, to catch lossy encodings.
CONTRACT_ROWS: list[ContractRow] = [
    ContractRow("a", T0, "plain"),
    ContractRow("b", T0 + timedelta(hours=1), "it's \"quoted\""),
    ContractRow("c", T0 + timedelta(hours=2), "ünïcødé ✓"),
    ContractRow("d", T0 + timedelta(hours=3), ""),
    ContractRow("e", T0 + timedelta(hours=4), "line\nbreak"),
    ContractRow("f", T0 + timedelta(hours=5), "last"),
]
CONTRACT_COLUMNS = ("id", "ts", "body")


@dataclass(frozen=True)
class ContractSource:
    """Where a provider put the contract rows, and how to reach it (rightly and wrongly)."""

    options: dict[str, Any]            # valid connector options (secrets already expanded)
    table: str                         # what Window.table names to read the rows
    cursor: str = "ts"                 # the cursor column's name in the source
    columns: tuple[str, ...] = CONTRACT_COLUMNS  # source column names for id, ts, body, in that order
    # Options that must fail with ConnectorTerminalError (wrong password, unknown role or database; for a
    # source without credentials: a missing file). `secret` must appear in no error text.
    bad_options: dict[str, Any] = field(default_factory=dict)
    secret: str | None = None
    stand_in: str | None = None        # set when a test-only driver replaces the real service


class Provider(Protocol):
    def seeded_source(self, tmp_path: Path, rows: list[ContractRow]) -> AbstractContextManager[ContractSource]: ...


def find_provider(name: str) -> ModuleType | None:
    """The provider module for connector `name`, or None when it has none."""
    for ep in entry_points(group=PROVIDER_GROUP):
        if ep.name == name:
            return ep.load()
    try:
        return importlib.import_module(f"tests.contract.providers.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"tests.contract.providers.{name}":
            return None
        raise


def installed_connector_names() -> list[str]:
    from alignloop.connectors.base import ENTRY_POINT_GROUP

    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def naive_utc(value: datetime) -> datetime:
    from datetime import UTC

    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def rows_of(batches: Iterator[Any], columns: tuple[str, ...]) -> list[tuple[str, datetime, str]]:
    """(id, ts, body) tuples of everything the batches hold, in order; ts as naive UTC."""
    out = []
    for batch in batches:
        data = batch.to_pydict()
        for i in range(batch.num_rows):
            ts = data[columns[1]][i]
            out.append((data[columns[0]][i], naive_utc(ts) if ts is not None else None, data[columns[2]][i]))
    return out
