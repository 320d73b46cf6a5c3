"""The checkout's side of the connector contract: where the built-in connectors' providers live.

The kit itself (the contract rows, ContractSource, the promises, ConnectorContract) ships in the
package as alignloop.connectors.testing, so a connector packaged elsewhere tests itself without this
repository. A built-in connector joins with a module `tests/contract/providers/<name>.py`; a plugin
registers its provider under the entry-point group `alignloop.contract_providers`.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from alignloop.connectors import testing
from alignloop.connectors.testing import (  # noqa: F401  (the names providers and tests import)
    CONTRACT_COLUMNS,
    CONTRACT_ROWS,
    PROVIDER_GROUP,
    T0,
    ContractRow,
    ContractSource,
    Provider,
    installed_connector_names,
    naive_utc,
    rows_of,
)


def find_provider(name: str) -> ModuleType | Any | None:
    """The provider for connector `name`: a registered one, else tests/contract/providers/<name>.py, else None."""
    registered = testing.find_provider(name)
    if registered is not None:
        return registered
    try:
        return importlib.import_module(f"tests.contract.providers.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"tests.contract.providers.{name}":
            return None
        raise
