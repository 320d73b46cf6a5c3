"""`alignloop serve`: the retrain flow served on this machine on a schedule, with nothing else to run.

Prefect's `serve` registers a deployment of `retrain-from-config` with a cron or interval schedule and
runs each scheduled run in a child process, against the configured Prefect server or the temporary one
of flows/prefect_api.py (kept for as long as serving lasts). `--once` registers the deployment, runs it
once now, and returns that run's final state.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

import psutil

from prefect import serve
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.runner import Runner

from alignloop.flows.retrain import retrain_from_config

# How long serving, once stopped, waits for its runs to record how they ended.
STOP_WAIT_S = 60.0


def deployment(config: Path, name: str, *, cron: str | None = None, interval: float | None = None):
    """The served deployment: the config's path is its one parameter (the config is read at each run)."""
    every = timedelta(seconds=interval) if interval else None
    return retrain_from_config.to_deployment(
        name=name, parameters={"config_path": str(config.resolve()), "force": False},
        cron=None if every else cron, interval=every,
        description="Ingest new feedback; retrain, evaluate and register when enough arrived (alignloop serve).")


def serve_forever(config: Path, name: str, *, cron: str | None = None, interval: float | None = None) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM); the schedule is paused when serving stops."""
    try:
        # One run at a time: a run that outlasts the interval delays the next instead of racing it for the lock.
        serve(deployment(config, name, cron=cron, interval=interval), limit=1, print_starting_message=True)
    finally:
        _wait_for_runs_to_end(STOP_WAIT_S)
        # A temporary API server stops next: Prefect's cancellation observer, still subscribed to it, would
        # report the closed connection as a warning with a traceback.
        logging.getLogger("prefect.FlowRunCancellingObserver").setLevel(logging.ERROR)


def _wait_for_runs_to_end(timeout_s: float) -> None:
    """Serving stopped and asked its run processes to stop: let them record how they ended while the API is
    still there to hear it (a temporary server stops when serving returns)."""
    runs = [p for p in psutil.Process().children() if not _is_api_server(p)]
    psutil.wait_procs(runs, timeout=timeout_s)


def _is_api_server(process: psutil.Process) -> bool:
    try:
        return "prefect.server.api.server:create_app" in process.cmdline()
    except psutil.Error:
        return False


def serve_once(config: Path, name: str, *, cron: str | None = None, interval: float | None = None) -> FlowRun:
    """Register the served deployment, run it once now (as its scheduled runs would run), return that run."""
    return asyncio.run(_once(deployment(config, name, cron=cron, interval=interval)))


async def _once(served) -> FlowRun:
    runner = Runner(name=f"{served.name}-once", pause_on_shutdown=False, limit=1)
    deployment_id = await runner.aadd_deployment(served)
    async with get_client() as client:
        flow_run = await client.create_flow_run_from_deployment(deployment_id)
    await runner.start(run_once=True)
    async with get_client() as client:
        return await client.read_flow_run(flow_run.id)
