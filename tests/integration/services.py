"""Services the deployment tests start natively on loopback, each in its own process group and stopped
with it, and the few Prefect REST calls the tests make."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from alignloop.offline import OFFLINE_DEFAULTS
from tests.shared_builds import seeded_prefect_home

REPO = Path(__file__).resolve().parents[2]
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prefect_env(home: Path, api_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of every Prefect process a test starts: its own home, offline, no UI."""
    env = {**os.environ, **OFFLINE_DEFAULTS, "PREFECT_HOME": str(seeded_prefect_home(home)),
           "PREFECT_SERVER_UI_ENABLED": "false",
           "PREFECT_LOGGING_LEVEL": "INFO", **extra}
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


@contextmanager
def service(argv: list[str], *, env: dict[str, str], log: Path, health_url: str | None = None,
            cwd: Path = REPO, timeout_s: float = 180) -> Iterator[subprocess.Popen]:
    """Start argv in its own process group; wait until health_url answers 200; stop the group afterwards."""
    out = log.open("w")
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if health_url:
            wait_until_healthy(proc, health_url, log, timeout_s)
        yield proc
    finally:
        stop(proc)
        out.close()


def wait_until_healthy(proc: subprocess.Popen, health_url: str, log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(health_url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{' '.join(proc.args[2:5])} did not start within {timeout_s:.0f} s: {log.read_text()[-3000:]}")
        time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def call(api: str, path: str, body: dict | None = None) -> dict | list:
    """One Prefect REST call (POST when there is a body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{api}{path}", data=data, headers={"Content-Type": "application/json"},
                                     method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{path}: HTTP {e.code}: {e.read()[:500]!r}") from None


def trigger(api: str, deployment: str, parameters: dict) -> str:
    """Create a flow run of `flow/deployment` now; returns its id."""
    found = call(api, f"/deployments/name/{deployment}")
    return call(api, f"/deployments/{found['id']}/create_flow_run", {"parameters": parameters})["id"]


def wait_for_final_state(api: str, flow_run_id: str, timeout_s: float, logs: list[Path] = ()) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = call(api, f"/flow_runs/{flow_run_id}")
        if run["state"] and run["state"]["type"] in FINAL_STATES:
            return run
        time.sleep(1)
    tails = "\n".join(p.read_text()[-3000:] for p in logs if p.exists())
    raise AssertionError(f"flow run {flow_run_id} not finished after {timeout_s:.0f} s: {run['state']}\n{tails}")


def task_runs(api: str, flow_run_id: str) -> list[dict]:
    """Task runs of a flow run and of its subflows (the retrain flow runs inside retrain-from-config)."""
    ids = [flow_run_id]
    children = call(api, "/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": ids}}})
    ids += [c["id"] for c in children]
    return call(api, "/task_runs/filter", {"flow_runs": {"id": {"any_": ids}}})
