"""Built-in connectors follow the Connector protocol as classes of their own: none inherits another's
implementation (what they share, they hold: an AttachedReader, an AdbcReader)."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILTIN = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["alignloop.connectors"]


def _class(target: str) -> type:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_a_builtin_connector_is_a_class_of_its_own_that_follows_the_protocol(name):
    cls = _class(BUILTIN[name])
    assert cls.__bases__ == (object,), f"{name}: {cls.__name__} inherits {cls.__bases__}; hold a helper instead"
    for member in ("Settings", "check", "read"):  # the Connector protocol's members, each its own
        assert member in vars(cls), f"{name}: {cls.__name__} has no {member} of its own"
