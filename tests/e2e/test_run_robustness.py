"""`alignloop run` on a bad day: a slow or absent Prefect API, a kill -9, a full disk, no network.

Each run here is on a store too thin to train on, so a run that gets through ends quickly with exit 4
(skipped: the planner found too few pairs).
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from prefect.testing.utilities import prefect_test_harness

from alignloop.demo import write_demo_config, write_demo_warehouse
from tests.conftest import chat, make_warehouse
from tests.shared_builds import seeded_prefect_home
from tests.terminal import cli, run_piped

pytestmark = pytest.mark.slow

SERVER_APP = "prefect.server.api.server:create_app"
# Imported by every Python process started with this folder on PYTHONPATH: the Prefect API server's
# process sleeps before it starts, as it does on a machine busy with other work.
SLOW_SERVER = f"""
import os, sys, time
if {SERVER_APP!r} in sys.argv:
    time.sleep(float(os.environ["SLOW_SERVER_DELAY_S"]))
"""
# What a run must not lean on: the offline defaults come from alignloop itself, not from this test process.
NETWORK_DEFAULTS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "PREFECT_SERVER_ANALYTICS_ENABLED",
                    "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")


def thin_workdir(root: Path) -> Path:
    """A workdir whose warehouse has a handful of rows: a run plans, finds too little, and skips."""
    root.mkdir(parents=True, exist_ok=True)
    make_warehouse(root / "warehouse.duckdb",
                   generations=[(f"r{i}", i, f"u{i}", "v1", chat(f"question {i % 3}"), f"answer {i}") for i in range(6)],
                   feedback=[(f"f{i}", f"r{i}", 10 + i, f"u{i}", "thumb", "up" if i % 2 else "down", None)
                             for i in range(6)])
    write_demo_config(root, tiny=True)
    return root


def env_for(work: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in NETWORK_DEFAULTS and not k.startswith(("ALIGNLOOP__", "PREFECT_API_URL", "PREFECT_HOME"))}
    return {**env, "PREFECT_HOME": str(seeded_prefect_home(work / "prefect-home")), **extra}


def slow_server_env(work: Path, delay_s: float, **extra: str) -> dict[str, str]:
    hook = work / "slow-server"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(SLOW_SERVER)
    return env_for(work, PYTHONPATH=str(hook), SLOW_SERVER_DELAY_S=str(delay_s), **extra)


def test_a_prefect_server_slower_than_prefects_own_20s_wait_still_runs_the_flow(tmp_path):
    work = thin_workdir(tmp_path / "slow")
    done = run_piped(cli("run", "-c", "alignloop.yaml"), timeout=600, cwd=work, env=slow_server_env(work, 25))
    assert done.returncode == 4, done.stderr[-3000:]
    assert "outcome: skipped" in done.stdout and "Traceback" not in done.stderr
    assert "telemetry" not in (done.stdout + done.stderr).lower()


def test_a_prefect_server_that_never_answers_in_time_is_one_line_naming_the_setting(tmp_path):
    work = thin_workdir(tmp_path / "too-slow")
    env = slow_server_env(work, 30, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="5")
    done = run_piped(cli("run", "-c", "alignloop.yaml"), timeout=300, cwd=work, env=env)
    assert done.returncode == 1, done.stderr[-3000:]
    (line,) = [x for x in done.stderr.splitlines() if "error" in x.lower()]
    assert line.startswith("error: the temporary Prefect API server did not answer within 5s")
    assert "raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in line and "Traceback" not in done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_prefect_api_is_one_line_saying_how_to_fix_it(tmp_path):
    work = thin_workdir(tmp_path / "unreachable")
    url = f"http://127.0.0.1:{_free_port()}/api"
    # Waits 1 s for it, not the default 30 (a server started beside the scheduler may still be coming up).
    env = env_for(work, PREFECT_API_URL=url, ALIGNLOOP_PREFECT_API_WAIT_SECONDS="1")
    done = run_piped(cli("run", "-c", "alignloop.yaml"), timeout=300, cwd=work, env=env)
    assert done.returncode == 1, done.stderr[-3000:]
    (line,) = [x for x in done.stderr.splitlines() if "error" in x.lower()]
    assert "Traceback" not in done.stderr
    assert line.startswith(f"error: the Prefect API at {url} (PREFECT_API_URL) cannot be reached within 1 s (ConnectError")
    assert "unset PREFECT_API_URL" in line and "ALIGNLOOP_PREFECT_API_WAIT_SECONDS" in line
    assert not (work / "runs").exists()


def _server_of(pid: int, deadline: float) -> psutil.Process:
    while time.monotonic() < deadline:
        for child in psutil.Process(pid).children(recursive=True):
            try:
                if SERVER_APP in child.cmdline():
                    return child
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.2)
    raise AssertionError("no Prefect API server process appeared")


def test_the_temporary_prefect_server_ends_with_a_run_killed_with_sigkill(tmp_path):
    work = tmp_path / "killed"
    write_demo_warehouse(work / "warehouse.duckdb", n_feedback=600, n_prompts=60)  # enough to train: a long run
    write_demo_config(work, tiny=True)
    run = subprocess.Popen(cli("run", "-c", "alignloop.yaml"), cwd=work, env=env_for(work),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = None
    try:
        server = _server_of(run.pid, time.monotonic() + 300)
        port = server.cmdline()[server.cmdline().index("--port") + 1]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # up and serving, as after hours of a run
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        gone = psutil.wait_procs([server], timeout=60)[0]
        alive = server.is_running() and server.status() != psutil.STATUS_ZOMBIE
        assert gone or not alive, f"the Prefect API server (pid {server.pid}) outlived its killed run"
    finally:
        run.kill()
        if server is not None and server.is_running():  # when the test fails: leave no orphan behind
            server.kill()


def test_running_the_flow_module_sends_no_telemetry(tmp_path):
    work = thin_workdir(tmp_path / "module")
    done = run_piped([sys.executable, "-m", "alignloop.flows.retrain", "alignloop.yaml"], timeout=600, cwd=work,
                     env=env_for(work))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "'method': 'skip'" in done.stdout
    assert "telemetry" not in (done.stdout + done.stderr).lower()


@pytest.fixture(scope="module")
def prefect_server():
    with prefect_test_harness(server_startup_timeout=300):
        from prefect.settings import PREFECT_API_URL

        yield PREFECT_API_URL.value()


def _file_size_limit(limit: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("command", ["ingest", "run"])
def test_a_full_disk_is_one_line_naming_the_cause_and_the_fix(tmp_path, prefect_server, command):
    # A file size limit makes the store's first large write fail as a full disk does (File too large).
    # The Prefect server runs outside the limit (PREFECT_API_URL), as a database server would.
    work = tmp_path / "full"
    write_demo_warehouse(work / "warehouse.duckdb", n_feedback=600, n_prompts=60)
    write_demo_config(work, tiny=True)
    done = subprocess.run(cli(command, "-c", "alignloop.yaml"), cwd=work, capture_output=True, text=True, timeout=600,
                          env=env_for(work, PREFECT_API_URL=prefect_server), preexec_fn=_file_size_limit(600_000))
    assert done.returncode == 1, done.stderr[-3000:]
    errors = [x for x in done.stderr.splitlines() if "error" in x.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: no room to write (") and "File too large" in errors[0]
    assert "ulimit -f" in errors[0] and "Traceback" not in done.stderr and "rollback" not in done.stderr
