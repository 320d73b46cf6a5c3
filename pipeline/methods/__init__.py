"""Training methods: each registered once, by its own module in this package.

Each module (besides base) defines the TrainingMethod named after the module. METHODS is read from
them, and config validation (training.method), the planner, the trainer and `alignloop bench methods`
read METHODS, never a list of names: a new method is its module here, its builder when it needs a
trainer of its own, and its test (docs/extending.md).
"""

from __future__ import annotations

import importlib
import pkgutil

from alignloop.methods.base import TrainingMethod


def _registered_methods() -> dict[str, TrainingMethod]:
    """The method each module of this package defines under the module's own name, by name (sorted)."""
    found: dict[str, TrainingMethod] = {}
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if module == "base" or module.startswith("_"):
            continue
        values = vars(importlib.import_module(f"{__name__}.{module}")).values()
        method = next((v for v in values if isinstance(v, TrainingMethod) and v.name == module), None)
        if method is None:
            raise ImportError(f"pipeline/methods/{module}.py defines no TrainingMethod named {module!r}; "
                              "name the method after its module")
        found[module] = method
    return found


METHODS: dict[str, TrainingMethod] = _registered_methods()


def benchmark_arms() -> tuple[str, ...]:
    """Every registered method's benchmark arms, in the order of METHODS."""
    return tuple(arm for method in METHODS.values() for arm in method.benchmark_arms)


__all__ = ["METHODS", "TrainingMethod", "benchmark_arms"]
