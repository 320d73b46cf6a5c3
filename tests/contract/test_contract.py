"""The promises every connector keeps, checked against a real source seeded by its provider.

The promises themselves ship in the package (alignloop.connectors.testing), so a connector packaged
elsewhere runs the same ones with ConnectorContract. A new connector joins by adding
tests/contract/providers/<name>.py (see framework.py); the first test fails until it does.
"""

from __future__ import annotations

import json

import pytest

from alignloop.connectors import testing as contract
from alignloop.connectors.testing import installed_connector_names
from tests.contract.framework import find_provider


def test_every_installed_connector_has_a_contract_provider():
    missing = [n for n in installed_connector_names() if find_provider(n) is None]
    assert not missing, (
        f"connectors without a contract provider: {missing}; add tests/contract/providers/<name>.py "
        "(see tests/contract/framework.py) or register one under 'alignloop.contract_providers'"
    )


def test_full_read_returns_every_row(seeded):
    contract.full_read_returns_every_row(*seeded)


def test_same_window_twice_gives_the_same_rows(seeded):
    contract.same_window_twice_gives_the_same_rows(*seeded)


def test_open_ended_window_starts_at_its_start(seeded):
    contract.open_ended_window_starts_at_its_start(*seeded)


def test_no_cursor_reads_the_whole_source(seeded):
    contract.no_cursor_reads_the_whole_source(*seeded)


def test_empty_window_gives_no_rows(seeded):
    contract.empty_window_gives_no_rows(*seeded)


def test_columns_come_back_as_declared(seeded):
    contract.columns_come_back_as_declared(*seeded)


def test_batch_size_bounds_every_batch(seeded):
    contract.batch_size_bounds_every_batch(*seeded)


def test_unknown_option_is_rejected(seeded):
    contract.unknown_option_is_rejected(*seeded)


@pytest.mark.reliability
def test_bad_credentials_fail_fast_and_secret_free(seeded, connector_name, record_property):
    contract.bad_credentials_fail_fast_and_secret_free(*seeded)  # fails when the secret shows anywhere
    _, source = seeded
    kind = "wrong password" if source.secret else "missing source"
    record_property("reliability", json.dumps({
        "fault": f"{kind} ({connector_name}{', stand-in driver' if source.stand_in else ''})", "attempts": 1,
        "outcome": "one terminal line", "secrets_leaked": 0}))


def test_missing_table_is_one_terminal_line(seeded):
    contract.missing_table_is_one_terminal_line(*seeded)


def test_missing_cursor_column_is_one_terminal_line(seeded):
    contract.missing_cursor_column_is_one_terminal_line(*seeded)


def test_every_promise_of_the_kit_runs_here():
    here = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert {p.__name__ for p in contract.PROMISES} <= here
