"""The connector contract as a test kit: the promises every connector keeps, importable from the package.

A connector's package proves itself with one provider and one test class. The provider writes the
contract rows into a real source the connector reads, with one function:

    @contextmanager
    def seeded_source(tmp_path: Path, rows: list[ContractRow]) -> Iterator[ContractSource]: ...

(a file, a table in a server, an API's test instance; a test-only stand-in where the real service
cannot be reached, saying so in `stand_in`), yields where they are and cleans up afterwards. The test
module subclasses ConnectorContract:

    from alignloop.connectors.testing import ConnectorContract
    from my_plugin import contract_provider

    class TestAcmeFeedContract(ConnectorContract):
        connector = "acme_feed"          # the entry-point name
        provider = contract_provider

and pytest runs every promise against it. A provider registered under the entry-point group
`alignloop.contract_providers` also joins alignloop's own contract suite. The kit needs pytest only
to run; the promises are plain functions that raise AssertionError, one per promise.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import ValidationError

from alignloop.connectors.base import (
    ENTRY_POINT_GROUP,
    ConnectorError,
    ConnectorTerminalError,
    Window,
    load_connector,
)

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


def find_provider(name: str) -> Any | None:
    """The provider registered for connector `name` under `alignloop.contract_providers`, or None."""
    for ep in entry_points(group=PROVIDER_GROUP):
        if ep.name == name:
            return ep.load()
    return None


def installed_connector_names() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def rows_of(batches: Iterator[Any], columns: tuple[str, ...]) -> list[tuple[str, datetime, str]]:
    """(id, ts, body) tuples of everything the batches hold, in order; ts as naive UTC."""
    out = []
    for batch in batches:
        data = batch.to_pydict()
        for i in range(batch.num_rows):
            ts = data[columns[1]][i]
            if ts is not None and not isinstance(ts, datetime):
                raise AssertionError(f"the cursor column {columns[1]!r} came back as {type(ts).__name__} {ts!r}, "
                                     "not a timestamp: hand time columns over as Arrow timestamps")
            out.append((data[columns[0]][i], naive_utc(ts) if ts is not None else None, data[columns[2]][i]))
    return out


# ------------------------------------------------------------------------------------------ the promises
def _connector(cls: Any, options: dict[str, Any]) -> Any:
    return cls(cls.Settings.model_validate(options))


def _window(source: ContractSource, start: datetime | None = None, end: datetime | None = None,
            columns: tuple[str, ...] | None = None) -> Window:
    return Window(table=source.table, cursor_column=source.cursor, start=start, end=end,
                  columns=source.columns if columns is None else columns)


def _expected(start: datetime | None = None, end: datetime | None = None) -> list[tuple[str, datetime, str]]:
    return [(r.id, r.ts, r.body) for r in CONTRACT_ROWS
            if (start is None or r.ts >= start) and (end is None or r.ts < end)]


def _same(got: list[Any], wanted: list[Any], what: str) -> None:
    if sorted(got, key=repr) != sorted(wanted, key=repr):
        raise AssertionError(f"{what}: got {sorted(got, key=repr)!r}, expected {sorted(wanted, key=repr)!r}")


def _raised(kind: type[BaseException], action: Callable[[], Any], what: str) -> BaseException:
    try:
        action()
    except kind as e:
        return e
    raise AssertionError(f"{what}: expected {kind.__name__}, nothing was raised")


def _one_line(error: BaseException, what: str) -> str:
    text = str(error)
    if "\n" in text.strip() or "Traceback" in text:
        raise AssertionError(f"{what}: the error must be one line, got {text!r}")
    return text


def full_read_returns_every_row(cls: Any, source: ContractSource) -> None:
    connector = _connector(cls, source.options)
    connector.check()
    _same(rows_of(connector.read(_window(source)), source.columns), _expected(), "a full read")  # in any order


def same_window_twice_gives_the_same_rows(cls: Any, source: ContractSource) -> None:
    connector = _connector(cls, source.options)
    start, end = T0 + timedelta(hours=1), T0 + timedelta(hours=4)
    first = rows_of(connector.read(_window(source, start, end)), source.columns)
    second = rows_of(connector.read(_window(source, start, end)), source.columns)
    _same(first, _expected(start, end), "the window [T0+1h, T0+4h) (half-open: b, c, d)")
    _same(second, first, "the same window read twice")


def open_ended_window_starts_at_its_start(cls: Any, source: ContractSource) -> None:
    start = T0 + timedelta(hours=4)
    got = rows_of(_connector(cls, source.options).read(_window(source, start)), source.columns)
    _same(got, _expected(start), "the window [T0+4h, open) (e, f)")


def no_cursor_reads_the_whole_source(cls: Any, source: ContractSource) -> None:
    window = Window(table=source.table, cursor_column=None, columns=source.columns)
    got = rows_of(_connector(cls, source.options).read(window), source.columns)
    _same(got, _expected(), "a read without a cursor column")  # no order is promised without a cursor


def empty_window_gives_no_rows(cls: Any, source: ContractSource) -> None:
    later = T0 + timedelta(days=30)
    batches = list(_connector(cls, source.options).read(_window(source, later, later + timedelta(hours=1))))
    if sum(b.num_rows for b in batches):
        raise AssertionError(f"a window after every row gave {sum(b.num_rows for b in batches)} row(s)")


def columns_come_back_as_declared(cls: Any, source: ContractSource) -> None:
    wanted = (source.columns[2], source.columns[0], source.columns[1])  # an order other than the table's
    batches = list(_connector(cls, source.options).read(_window(source, columns=wanted)))
    if not batches:
        raise AssertionError("a non-empty window yielded no batches")
    for batch in batches:
        if tuple(batch.schema.names) != wanted:
            raise AssertionError(f"asked for the columns {wanted}, got {tuple(batch.schema.names)}")
    ids = sorted(v for b in batches for v in b.column(source.columns[0]).to_pylist())
    if ids != [r.id for r in CONTRACT_ROWS]:
        raise AssertionError(f"ids read: {ids}")


def batch_size_bounds_every_batch(cls: Any, source: ContractSource) -> None:
    if "batch_size" not in cls.Settings.model_fields:
        raise AssertionError(f"{cls.__name__}.Settings has no batch_size option: every connector streams in "
                             "bounded batches")
    sizes = [b.num_rows for b in _connector(cls, {**source.options, "batch_size": 2}).read(_window(source))
             if b.num_rows]
    if sum(sizes) != len(CONTRACT_ROWS) or max(sizes) > 2 or len(sizes) < 3:
        raise AssertionError(f"batch_size 2 over {len(CONTRACT_ROWS)} rows gave batches of {sizes}")


def unknown_option_is_rejected(cls: Any, source: ContractSource) -> None:
    _raised(ValidationError, lambda: cls.Settings.model_validate({**source.options, "no_such_option": 1}),
            "an unknown option")


def bad_credentials_fail_fast_and_secret_free(cls: Any, source: ContractSource) -> None:
    if not source.bad_options:
        raise AssertionError("the provider must give bad_options (wrong credentials, or a missing source)")

    def use() -> None:
        connector = _connector(cls, source.bad_options)
        connector.check()
        list(connector.read(_window(source)))

    started = time.perf_counter()
    caught = _raised(ConnectorTerminalError, use, "bad options")
    if time.perf_counter() - started >= 15:
        raise AssertionError("bad credentials must fail fast, not after retries")
    text = _one_line(caught, "bad options")
    if source.secret:
        settings = cls.Settings.model_validate(source.bad_options)
        for shown in (text, repr(caught), repr(settings), str(settings), str(caught.__cause__ or "")):
            if source.secret in shown:
                raise AssertionError("the secret shows in an error or in the settings' text")


def missing_table_is_one_terminal_line(cls: Any, source: ContractSource) -> None:
    window = _window(source)
    missing = Window(table="no_such_table_xyz", cursor_column=window.cursor_column, columns=window.columns)
    caught = _raised(ConnectorTerminalError, lambda: list(_connector(cls, source.options).read(missing)),
                     "a missing table")
    if "no_such_table_xyz" not in _one_line(caught, "a missing table"):
        raise AssertionError(f"the error must name the missing table: {caught}")


def missing_cursor_column_is_one_terminal_line(cls: Any, source: ContractSource) -> None:
    window = Window(table=source.table, cursor_column="no_such_cursor", columns=source.columns)
    caught = _raised(ConnectorError, lambda: list(_connector(cls, source.options).read(window)),
                     "a missing cursor column")
    if not isinstance(caught, ConnectorTerminalError):
        raise AssertionError(f"a missing cursor column is terminal (a retry cannot help), got {caught!r}")
    if "no_such_cursor" not in _one_line(caught, "a missing cursor column"):
        raise AssertionError(f"the error must name the missing column: {caught}")


PROMISES: tuple[Callable[[Any, ContractSource], None], ...] = (
    full_read_returns_every_row, same_window_twice_gives_the_same_rows, open_ended_window_starts_at_its_start,
    no_cursor_reads_the_whole_source, empty_window_gives_no_rows, columns_come_back_as_declared,
    batch_size_bounds_every_batch, unknown_option_is_rejected, bad_credentials_fail_fast_and_secret_free,
    missing_table_is_one_terminal_line, missing_cursor_column_is_one_terminal_line,
)


# ------------------------------------------------------------------------------------------ the test class
class ConnectorContract:
    """Every promise as a test method. Subclass it as `Test...`, set `connector` (the entry-point name,
    so the registration is tested too) and `provider` (a module with seeded_source; by default the one
    registered under `alignloop.contract_providers`). The source is seeded once per class."""

    connector: ClassVar[str] = ""
    provider: ClassVar[Any] = None
    _seeded: ClassVar[tuple[Any, ContractSource]]

    @classmethod
    def setup_class(cls) -> None:
        if not cls.connector:
            raise AssertionError(f"{cls.__name__}.connector: set it to the connector's entry-point name")
        provider = cls.provider or find_provider(cls.connector)
        if provider is None:
            raise AssertionError(f"{cls.__name__}.provider: no provider for {cls.connector!r}; set it to a module "
                                 f"with seeded_source, or register one under {PROVIDER_GROUP!r}")
        connector_class = load_connector(cls.connector)
        cls._folder = tempfile.TemporaryDirectory(prefix=f"contract-{cls.connector}-")
        cls._seeding = provider.seeded_source(Path(cls._folder.name), list(CONTRACT_ROWS))
        try:
            source = cls._seeding.__enter__()
            if not isinstance(source, ContractSource):
                cls._seeding.__exit__(None, None, None)
                raise AssertionError(f"{cls.connector}: seeded_source must yield a ContractSource, not {source!r}")
        except BaseException:
            cls._folder.cleanup()  # pytest runs no teardown_class after a failed setup_class
            raise
        cls._seeded = (connector_class, source)

    @classmethod
    def teardown_class(cls) -> None:
        try:
            cls._seeding.__exit__(None, None, None)
        finally:
            cls._folder.cleanup()


def _as_test(promise: Callable[[Any, ContractSource], None]) -> Callable[[ConnectorContract], None]:
    def test(self: ConnectorContract) -> None:
        promise(*self._seeded)

    test.__name__ = f"test_{promise.__name__}"
    test.__doc__ = promise.__doc__
    return test


for _promise in PROMISES:
    setattr(ConnectorContract, f"test_{_promise.__name__}", _as_test(_promise))
