"""Registries read from a package's modules: each module registers one item, named after the module.

Log shapes (alignloop.shapes) and training methods (alignloop.methods) are registered this way, so
adding one is adding its module; nothing keeps a list of their names.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def registered_in(package: str, path: Iterable[str], kind: type[T], skip: tuple[str, ...] = ("base",)) -> dict[str, T]:
    """The `kind` instance each module of `package` (found on `path`) defines with `.name` equal to the
    module's name, by name, sorted; modules in `skip` and private ones are left out. A module without one
    is an ImportError naming it."""
    found: dict[str, T] = {}
    for module in sorted(m.name for m in pkgutil.iter_modules(path)):
        if module in skip or module.startswith("_"):
            continue
        values = vars(importlib.import_module(f"{package}.{module}")).values()
        item = next((v for v in values if isinstance(v, kind) and getattr(v, "name", None) == module), None)
        if item is None:
            raise ImportError(f"{package}.{module} defines no {kind.__name__} named {module!r}; "
                              "name the item after its module")
        found[module] = item
    return found
