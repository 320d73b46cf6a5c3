"""Training methods: each registered once, by its own module in this package.

Each module (besides base) defines the TrainingMethod named after the module. METHODS is read from
them, and config validation (training.method), the planner, the trainer and `alignloop bench methods`
read METHODS, never a list of names: a new method is its module here, its builder when it needs a
trainer of its own, and its test (docs/extending.md).
"""

from __future__ import annotations

from alignloop.methods.base import TrainingMethod
from alignloop.registered import registered_in

METHODS: dict[str, TrainingMethod] = registered_in(__name__, __path__, TrainingMethod)


def benchmark_arms() -> tuple[str, ...]:
    """Every registered method's benchmark arms, in the order of METHODS."""
    return tuple(arm for method in METHODS.values() for arm in method.benchmark_arms)


__all__ = ["METHODS", "TrainingMethod", "benchmark_arms"]
