"""Log lines of a run: errors alignloop raised on purpose as one line, and JSON lines on request.

An AlignloopError's message already names the cause and the fix; Prefect would log it with a
traceback (and again as the failed state), which buries that line. On Prefect's run loggers it
becomes one line, marked `alignloop_reported` so the command line, which prints the error itself,
leaves it out of the terminal. `--log-format json` writes every line as one JSON object that carries
the Prefect flow run id and the run folder (the alignloop run id).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

from alignloop import secrets
from alignloop.errors import AlignloopError

RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
_run_id: str | None = None


def set_run_id(run_id: str | None) -> None:
    """The run folder now being worked on; JSON log lines carry it."""
    global _run_id
    _run_id = run_id


def _error_names() -> str:
    found, todo = set(), [AlignloopError]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo += cls.__subclasses__()
    return "|".join(sorted(found))


class OneLineExpectedErrors(logging.Filter):
    """Turns a run log record about an AlignloopError into one line without a traceback, and marks it."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, AlignloopError):
            first = record.getMessage().split(":", 1)[0]  # e.g. "Encountered exception during execution"
            record.msg, record.args = f"{first}: {type(exc).__name__}: {secrets.redact(str(exc))}", ()
            record.exc_info = record.exc_text = None
            record.alignloop_reported = True
        elif record.levelno >= logging.ERROR and re.search(rf"\b({_error_names()})\b", record.getMessage()):
            record.alignloop_reported = True  # "Finished in state Failed('... TerminalError: ...')"
        return True


class DropReported(logging.Filter):
    """For a console whose program prints the error line itself: leave out the run's copy of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "alignloop_reported", False)


def install_run_filters() -> None:
    """Once per process: AlignloopErrors on Prefect's run loggers become one line."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OneLineExpectedErrors) for f in logger.filters):
            logger.addFilter(OneLineExpectedErrors())


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, Prefect flow run id, alignloop run id."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "message": record.getMessage(),
                "flow_run_id": _flow_run_id(record), "run_id": _run_id}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def _flow_run_id(record: logging.LogRecord) -> str | None:
    if getattr(record, "flow_run_id", None):  # Prefect's run loggers set it on their records
        return str(record.flow_run_id)
    try:
        from prefect.context import FlowRunContext

        context = FlowRunContext.get()
    except ImportError:
        return None
    return str(context.flow_run.id) if context and context.flow_run else None
