"""How long-running stages report progress to whoever is watching (the CLI's rich display).

The CLI installs a Reporter before it runs a stage or the flow; tasks call the module functions,
which do nothing when no one is watching (for example under a Prefect worker).
"""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    def stage(self, name: str, detail: str = "") -> None: ...
    def train_step(self, step: int, max_steps: int, metrics: dict[str, float]) -> None: ...
    def eval_progress(self, done: int, total: int) -> None: ...


_current: Reporter | None = None


def install(reporter: Reporter | None) -> None:
    global _current
    _current = reporter


def stage(name: str, detail: str = "") -> None:
    if _current:
        _current.stage(name, detail)


def train_step(step: int, max_steps: int, metrics: dict[str, float]) -> None:
    if _current:
        _current.train_step(step, max_steps, metrics)


def eval_progress(done: int, total: int) -> None:
    if _current:
        _current.eval_progress(done, total)
