"""The promises every connector keeps, checked against a real source seeded by its provider.

A new connector joins by adding tests/contract/providers/<name>.py (see framework.py); the first test
fails until it does.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from pydantic import ValidationError

from alignloop.connectors.base import ConnectorError, ConnectorTerminalError, Window
from tests.contract.framework import CONTRACT_ROWS, T0, find_provider, installed_connector_names, rows_of


def test_every_installed_connector_has_a_contract_provider():
    missing = [n for n in installed_connector_names() if find_provider(n) is None]
    assert not missing, (
        f"connectors without a contract provider: {missing}; add tests/contract/providers/<name>.py "
        "(see tests/contract/framework.py) or register one under 'alignloop.contract_providers'"
    )


def _connector(cls, options):
    return cls(cls.Settings.model_validate(options))


def _window(source, start=None, end=None, columns=None) -> Window:
    return Window(table=source.table, cursor_column=source.cursor, start=start, end=end,
                  columns=source.columns if columns is None else columns)


def _expected(start=None, end=None):
    return [(r.id, r.ts, r.body) for r in CONTRACT_ROWS
            if (start is None or r.ts >= start) and (end is None or r.ts < end)]


def test_full_read_returns_every_row(seeded):
    cls, source = seeded
    connector = _connector(cls, source.options)
    connector.check()
    got = rows_of(connector.read(_window(source)), source.columns)
    assert sorted(got) == sorted(_expected())  # in any order: the core needs none (Connector.read)


def test_same_window_twice_gives_the_same_rows(seeded):
    cls, source = seeded
    connector = _connector(cls, source.options)
    start, end = T0 + timedelta(hours=1), T0 + timedelta(hours=4)
    first = rows_of(connector.read(_window(source, start, end)), source.columns)
    second = rows_of(connector.read(_window(source, start, end)), source.columns)
    assert sorted(first) == sorted(second) == _expected(start, end)  # half-open: b, c, d


def test_open_ended_window_starts_at_its_start(seeded):
    cls, source = seeded
    start = T0 + timedelta(hours=4)
    got = rows_of(_connector(cls, source.options).read(_window(source, start)), source.columns)
    assert sorted(got) == _expected(start)  # e, f


def test_no_cursor_reads_the_whole_source(seeded):
    cls, source = seeded
    window = Window(table=source.table, cursor_column=None, columns=source.columns)
    got = rows_of(_connector(cls, source.options).read(window), source.columns)
    assert sorted(got) == sorted(_expected())  # no order is promised without a cursor


def test_empty_window_gives_no_rows(seeded):
    cls, source = seeded
    connector = _connector(cls, source.options)
    later = T0 + timedelta(days=30)
    batches = list(connector.read(_window(source, later, later + timedelta(hours=1))))
    assert sum(b.num_rows for b in batches) == 0


def test_columns_come_back_as_declared(seeded):
    cls, source = seeded
    connector = _connector(cls, source.options)
    wanted = (source.columns[2], source.columns[0], source.columns[1])  # an order other than the table's
    batches = list(connector.read(_window(source, columns=wanted)))
    assert batches, "a non-empty window yielded no batches"
    for batch in batches:
        assert tuple(batch.schema.names) == wanted
    ids = [v for b in batches for v in b.column(source.columns[0]).to_pylist()]
    assert sorted(ids) == [r.id for r in CONTRACT_ROWS]


def test_batch_size_bounds_every_batch(seeded):
    cls, source = seeded
    if "batch_size" not in cls.Settings.model_fields:
        pytest.fail(f"{cls.__name__}.Settings has no batch_size option: every connector streams in bounded batches")
    connector = _connector(cls, {**source.options, "batch_size": 2})
    sizes = [b.num_rows for b in connector.read(_window(source)) if b.num_rows]
    assert sum(sizes) == len(CONTRACT_ROWS)
    assert max(sizes) <= 2 and len(sizes) >= 3


def test_unknown_option_is_rejected(seeded):
    cls, source = seeded
    with pytest.raises(ValidationError):
        cls.Settings.model_validate({**source.options, "no_such_option": 1})


def test_bad_credentials_fail_fast_and_secret_free(seeded):
    cls, source = seeded
    assert source.bad_options, "the provider must give bad_options (wrong credentials, or a missing source)"
    started = time.perf_counter()
    with pytest.raises(ConnectorTerminalError) as caught:
        connector = _connector(cls, source.bad_options)
        connector.check()
        list(connector.read(_window(source)))
    assert time.perf_counter() - started < 15, "bad credentials must fail fast, not after retries"
    text = str(caught.value)
    assert "\n" not in text.strip() and "Traceback" not in text
    if source.secret:
        settings = cls.Settings.model_validate(source.bad_options)
        for shown in (text, repr(caught.value), repr(settings), str(settings), str(caught.value.__cause__ or "")):
            assert source.secret not in shown


def test_missing_table_is_one_terminal_line(seeded):
    cls, source = seeded
    connector = _connector(cls, source.options)
    window = _window(source)
    missing = Window(table="no_such_table_xyz", cursor_column=window.cursor_column, columns=window.columns)
    with pytest.raises(ConnectorTerminalError) as caught:
        list(connector.read(missing))
    text = str(caught.value)
    assert "no_such_table_xyz" in text and "\n" not in text.strip()


def test_missing_cursor_column_is_one_terminal_line(seeded):
    cls, source = seeded
    connector = _connector(cls, source.options)
    window = Window(table=source.table, cursor_column="no_such_cursor", columns=source.columns)
    with pytest.raises(ConnectorError) as caught:
        list(connector.read(window))
    assert isinstance(caught.value, ConnectorTerminalError)
    assert "no_such_cursor" in str(caught.value) and "\n" not in str(caught.value).strip()
