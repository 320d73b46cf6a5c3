"""Runs the contract suite once per installed connector that has a provider."""

from __future__ import annotations

from pathlib import Path

import pytest

from alignloop.connectors.testing import CONTRACT_ROWS, ContractSource, installed_connector_names
from tests.contract.framework import find_provider


def _with_providers() -> list[str]:
    return [n for n in installed_connector_names() if find_provider(n) is not None]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "connector_name" in metafunc.fixturenames:
        # Session scope: each connector's source is seeded once and only read by the tests.
        metafunc.parametrize("connector_name", _with_providers(), scope="session")


@pytest.fixture(scope="session")
def seeded(connector_name: str, tmp_path_factory: pytest.TempPathFactory):
    """(connector class, ContractSource) with the contract rows in a fresh real source."""
    from alignloop.connectors.base import load_connector

    provider = find_provider(connector_name)
    tmp_path: Path = tmp_path_factory.mktemp(f"contract-{connector_name}")
    with provider.seeded_source(tmp_path, list(CONTRACT_ROWS)) as source:
        assert isinstance(source, ContractSource), f"{connector_name}: seeded_source must yield a ContractSource"
        yield load_connector(connector_name), source
