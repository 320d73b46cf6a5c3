"""The Prefect API a run from this machine talks to: the server PREFECT_API_URL names, or a temporary one.

A temporary server is what Prefect starts by itself when no server is configured (its "ephemeral" API
server), started here instead so that it waits generously on a busy machine (PREFECT_SERVER_EPHEMERAL_
STARTUP_TIMEOUT_SECONDS, flows/defaults.py) and ends with the process that started it, even one killed
with SIGKILL (Linux: PR_SET_PDEATHSIG), rather than running on alone. Either way, an API that cannot be
reached is one line naming it and the fix, never a traceback.
"""

from __future__ import annotations

import contextlib
import ctypes
import inspect
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import prefect
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    get_current_settings,
    temporary_settings,
)
from prefect.utilities.asyncutils import run_coro_as_sync

from alignloop.errors import TerminalError
from alignloop.flows.defaults import STARTUP_TIMEOUT_ENV

# How long a configured server may take to answer its health check before the run gives up on it (a server
# started beside the scheduler may still be coming up); ALIGNLOOP_PREFECT_API_WAIT_SECONDS overrides it.
CONFIGURED_SERVER_WAIT_S = 30.0
API_WAIT_ENV = "ALIGNLOOP_PREFECT_API_WAIT_SECONDS"
_PR_SET_PDEATHSIG = 1


class PrefectUnreachable(TerminalError):
    """No Prefect API answers: the run cannot be recorded, so it does not start."""


def _die_with_parent() -> Any:
    """A function for the child to run between fork and exec (Linux): deliver SIGTERM to it when its
    parent dies, whichever way. Resolved here, in the parent, so the child only makes the call."""
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm


class _TemporaryServer(SubprocessASGIServer):
    """Prefect's ephemeral API server, started as a child that ends with this process."""

    _instances: dict[int | None, SubprocessASGIServer] = {}  # apart from the instances Prefect keeps itself
    # An ephemeral server runs none of the server's background services. Serving a schedule needs its
    # scheduler (which turns a deployment's schedule into runs), so `alignloop serve` asks for them all.
    with_services = False

    def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
        # Prefect's own command for its ephemeral server (prefect.server.api.server), plus the parent-death signal.
        args = [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent), "--factory",
                "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
                "--log-level", "error", "--lifespan", "on"]
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1",
               **get_current_settings().to_environment_variables(exclude_unset=True)}
        env.pop("PREFECT_API_URL", None)
        if self.with_services:
            env.pop("PREFECT__SERVER_EPHEMERAL")
        # Its own session: Ctrl-C in a terminal signals the whole foreground group, and the server must outlive
        # the runs that report their end to it; it stops when this process stops it, or dies.
        return subprocess.Popen(args, env=env, preexec_fn=_die_with_parent(), start_new_session=True)


def configured_server_wait_s() -> float:
    """Seconds to wait for PREFECT_API_URL's server: ALIGNLOOP_PREFECT_API_WAIT_SECONDS, or 30."""
    raw = os.environ.get(API_WAIT_ENV, "").strip()
    if not raw:
        return CONFIGURED_SERVER_WAIT_S
    try:
        wait = float(raw)
    except ValueError:
        wait = -1.0
    if not wait >= 0 or wait == float("inf"):
        raise TerminalError(f"{API_WAIT_ENV}: {raw!r} is not a number of seconds (0 or more); set it to e.g. 30, "
                            "or unset it for the default of 30")
    return wait


def _answers(api_url: str, wait_s: float) -> str:
    """'' when the API at api_url answers within wait_s; otherwise why not."""
    deadline, why = time.monotonic() + wait_s, ""
    while True:
        try:
            httpx.get(f"{api_url.rstrip('/')}/health", timeout=min(10.0, max(wait_s, 1.0)))
            return ""
        except httpx.HTTPError as e:
            why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        if time.monotonic() >= deadline:
            return why
        time.sleep(2.0)


@contextlib.contextmanager
def prefect_api(*, services: bool = False) -> Iterator[str]:
    """The Prefect API for the flows run inside this block: PREFECT_API_URL's server when one is set,
    otherwise a temporary server on loopback, stopped when the block ends (with the server's background
    services, its scheduler among them, when `services`). Yields the API URL."""
    configured = PREFECT_API_URL.value()
    if configured:
        wait_s = configured_server_wait_s()
        why = _answers(configured, wait_s)
        if why:
            raise PrefectUnreachable(
                f"the Prefect API at {configured} (PREFECT_API_URL) cannot be reached within {wait_s:g} s ({why}); "
                f"start that server (`prefect server start`), raise {API_WAIT_ENV} if it is still starting, or unset "
                "PREFECT_API_URL to run with a temporary local one")
        yield configured
        return
    timeout = int(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
    server = _TemporaryServer()
    server.with_services = services
    try:
        server.start(timeout=timeout)
    except RuntimeError as e:
        server.stop()
        raise PrefectUnreachable(
            f"the temporary Prefect API server did not answer within {timeout}s ({str(e).split('.')[0]}); on a busy "
            f"machine raise {STARTUP_TIMEOUT_ENV}, or run `prefect server start` and set PREFECT_API_URL") from None
    # Prefect code that asks for its default ephemeral server gets this one, not a second, unmanaged one.
    prior = SubprocessASGIServer._instances.get(None)
    SubprocessASGIServer._instances[None] = server
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server.api_url
            _drain_to_api()
    finally:
        server.stop()
        if prior is None:
            SubprocessASGIServer._instances.pop(None, None)
        else:
            SubprocessASGIServer._instances[None] = prior


def _drain_to_api() -> None:
    """Send the log lines and events still queued for the API while it is up (as Prefect's test harness
    does before it stops its server): sent after it stops, they end in 'Error logging to API'."""
    async def drain() -> None:
        with contextlib.suppress(RuntimeError):  # a worker that never started
            drained = APILogWorker.instance().drain()
            if inspect.isawaitable(drained):
                await drained
        drained = EventsWorker.drain_all()
        if inspect.isawaitable(drained):
            await drained

    run_coro_as_sync(drain())
