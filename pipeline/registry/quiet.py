"""Keep MLflow quiet on success: no schema-migration chatter, progress bars, "View run" links or
"Created version" lines; warnings and errors still come through."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

_CHATTER = re.compile(
    r"^(🏃 View run|🧪 View experiment|Successfully registered model|Registered model .* already exists|"
    r"Created version '\d+' of model)"
)


class _DropChatter(io.TextIOBase):
    """A stdout/stderr stand-in that drops MLflow's progress lines and forwards everything else.

    A rich console bound to the process's stderr or stdout looks the stream up on every write and
    follows `rich_proxied_file` to the real file. Without it, a console under a live display (which
    replaces sys.stderr by a proxy that prints through that console) would write into this wrapper,
    which writes into the proxy, which prints through the console again: an endless recursion that
    also leaves the display's lock held, so stopping the display hangs."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if not _CHATTER.match(line.strip()):
                self._target.write(line + "\n")
        return len(text)

    @property
    def rich_proxied_file(self) -> Any:
        return getattr(self._target, "rich_proxied_file", self._target)

    def isatty(self) -> bool:
        return self._target.isatty()

    def fileno(self) -> int:
        return self._target.fileno()

    def flush(self) -> None:
        if self._pending and not _CHATTER.match(self._pending.strip()):
            self._target.write(self._pending)
        self._pending = ""
        self._target.flush()


class _DropPickleWarning(logging.Filter):
    # MLflow warns that pickled python_model objects can run code on load; the object is ours.
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Passing a Python object as `python_model`")


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """Silence what MLflow prints on success (schema migrations of a new sqlite file, progress bars,
    "View run" links, "Created version" lines). Warnings and errors still come through."""
    loggers = {name: logging.getLogger(name) for name in ("alembic", "mlflow.store.db.utils")}
    levels = {name: lg.level for name, lg in loggers.items()}
    pickle_filter = _DropPickleWarning()
    pyfunc_logger = logging.getLogger("mlflow.pyfunc")
    saved_env = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    out, err = _DropChatter(sys.stdout), _DropChatter(sys.stderr)
    try:
        for lg in loggers.values():
            lg.setLevel(logging.WARNING)
        pyfunc_logger.addFilter(pickle_filter)
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield
    finally:
        out.flush()
        err.flush()
        for name, lg in loggers.items():
            lg.setLevel(levels[name])
        pyfunc_logger.removeFilter(pickle_filter)
        if saved_env is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = saved_env
