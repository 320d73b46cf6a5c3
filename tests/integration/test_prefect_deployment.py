"""The nightly deployment for real: `prefect server start` on the local PostgreSQL, the retrain flow
deployed from deploy/prefect.yaml by the commands written at its head, a process worker on that pool,
runs triggered through the API on the tiny model. A trained run registers a version; a run with no new
feedback completes without training; a source that is down at first is retried until it answers; a
source that can never work fails the run at once, with its one-line reason and without its password."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from alignloop.demo import write_demo_config, write_demo_warehouse
from tests.contract.servers import PG_HOST, PG_PORT, postgres_database, writable
from tests.integration.services import (
    REPO,
    call,
    free_port,
    prefect_env,
    prefect_server,
    service,
    task_runs,
    trigger,
    wait_for_final_state,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
DEPLOYMENT = "retrain-from-config/nightly-retrain"
PASSWORD = "s3cret-Deploy-pw-4171"  # trust auth ignores it; it must still appear nowhere


def documented_commands() -> list[list[str]]:
    """The commands deploy/prefect.yaml's header tells an operator to run, in order."""
    text = (REPO / "deploy" / "prefect.yaml").read_text()
    return [line.split() for line in re.findall(r"^#\s+(prefect .+)$", text, flags=re.M)]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Iterator[tuple[str, list[Path]]]:
    """A Prefect server with the deployment created as documented and a worker on its pool."""
    folder = tmp_path_factory.mktemp("prefect")
    with prefect_server(folder) as api:
        env = prefect_env(folder / "prefect-home", api, PG_PASSWORD=PASSWORD,
                          PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="5")
        *setup, start_worker = documented_commands()
        assert [c[:2] for c in setup] == [["prefect", "work-pool"], ["prefect", "deploy"]], setup
        assert start_worker[:3] == ["prefect", "worker", "start"], start_worker
        for command in setup:
            done = subprocess.run(["python", "-m", *command], cwd=REPO, env={**env, "PATH": _venv_path(env)},
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        log = folder / "worker.log"
        with service(["python", "-m", *start_worker], env={**env, "PATH": _venv_path(env)}, log=log):
            yield api, [log, folder / "prefect-server.log"]


def _venv_path(env: dict[str, str]) -> str:
    """PATH with this interpreter's folder first, so `python` is the one with alignloop installed."""
    return f"{Path(sys.executable).parent}:{env.get('PATH', '')}"


def _run(api: str, logs: list[Path], config: Path, timeout_s: float = 180) -> dict:
    flow_run_id = trigger(api, DEPLOYMENT, {"config_path": str(config)})
    return wait_for_final_state(api, flow_run_id, timeout_s, logs)


def _attempts(api: str, flow_run: dict, task: str) -> int:
    (found,) = [t for t in task_runs(api, flow_run["id"]) if t["name"].startswith(f"{task}-")]
    return found["run_count"]


def _postgres_config(workdir: Path, dsn: str) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "alignloop.yaml"
    config.write_text(yaml.safe_dump({
        "target": "deployed-pg", "base_model": {"tiny": True},
        "sources": [{"name": "pg_prefs", "connector": "postgres", "shape": "preference",
                     "options": {"dsn": dsn, "connect_timeout": 2},
                     "mapping": {"rows": {"table": "prefs", "ts": "ts", "prompt": "question", "chosen": "good",
                                          "rejected": "bad"}}}]}))
    return config


def test_a_deployed_run_registers_a_version_and_a_rerun_without_new_feedback_trains_nothing(deployed, tmp_path):
    api, logs = deployed
    write_demo_warehouse(tmp_path / "warehouse.duckdb", n_feedback=300, n_prompts=40)
    config = write_demo_config(tmp_path, tiny=True)

    first = _run(api, logs, config)
    assert first["state"]["type"] == "COMPLETED", first["state"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (version,) = client.search_model_versions("name='alignloop-demo'")
    assert int(version.version) == 1 == int(client.get_model_version_by_alias("alignloop-demo", "challenger").version)

    again = _run(api, logs, config)
    assert again["state"]["type"] == "COMPLETED", again["state"]
    assert len(client.search_model_versions("name='alignloop-demo'")) == 1
    ran = {t["name"].rsplit("-", 1)[0] for t in task_runs(api, again["id"])}
    assert "ingest" in ran and "train" not in ran, ran


def test_a_source_that_is_down_is_retried_and_the_run_completes_once_it_answers(deployed, tmp_path):
    api, logs = deployed
    port = free_port()
    with postgres_database() as database:
        with writable("postgres", f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{database}") as con:
            con.execute("CREATE TABLE db.prefs (id VARCHAR, ts TIMESTAMP, user_id VARCHAR, question VARCHAR, "
                        "good VARCHAR, bad VARCHAR)")
        config = _postgres_config(tmp_path, f"postgresql://postgres@127.0.0.1:{port}/{database}")
        flow_run_id = trigger(api, DEPLOYMENT, {"config_path": str(config)})
        relay = _Forwarder(port)
        try:
            _wait_for_task_state(api, flow_run_id, "ingest", "AwaitingRetry", logs)
            relay.start()
            run = wait_for_final_state(api, flow_run_id, 120, logs)
        finally:
            relay.close()
    assert run["state"]["type"] == "COMPLETED", run["state"]
    assert _attempts(api, run, "ingest") == 2


def test_a_source_that_cannot_work_fails_the_run_at_once_with_its_reason_and_no_password(deployed, tmp_path):
    api, logs = deployed
    config = _postgres_config(tmp_path, "postgresql://postgres:${PG_PASSWORD}@127.0.0.1:5432/alignloop_no_such_db")
    run = _run(api, logs, config)
    assert run["state"]["type"] == "FAILED", run["state"]
    message = run["state"]["message"]
    assert "pg_prefs" in message and "does not exist" in message, message
    assert _attempts(api, run, "ingest") == 1
    ids = [run["id"], *(c["id"] for c in call(api, "/flow_runs/filter",
                                               {"flow_runs": {"parent_flow_run_id": {"any_": [run["id"]]}}}))]
    lines = [entry["message"] for entry in call(api, "/logs/filter", {"logs": {"flow_run_id": {"any_": ids}}})]
    assert lines and not [line for line in lines if PASSWORD in line]
    assert PASSWORD not in message and PASSWORD not in logs[0].read_text()


def _wait_for_task_state(api: str, flow_run_id: str, task: str, state_name: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = [t["state"]["name"] for t in task_runs(api, flow_run_id)
                  if t["name"].startswith(f"{task}-") and t["state"]]
        if state_name in states:
            return
        time.sleep(0.5)
    raise AssertionError(f"task {task} never reached {state_name}: {logs[0].read_text()[-3000:]}")


class _Forwarder:
    """A TCP relay from a loopback port to PostgreSQL: the source 'comes back' when it starts."""

    def __init__(self, port: int) -> None:
        self.port, self.server = port, None

    def start(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection((PG_HOST, PG_PORT))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        if self.server:
            self.server.close()
