"""The nightly deployment for real: deploy/compose.yaml's stack started natively (Prefect and MLflow
servers on the local PostgreSQL, its deploy step running the commands written at the head of
deploy/prefect.yaml, a process worker on that pool), runs triggered through the API on the tiny model.
A trained run registers a version on the MLflow server; a run with no new feedback completes without
training; a source that is down at first is retried until it answers; a source that can never work
fails the run at once, with its reason and without its password."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from alignloop.demo import write_demo_config, write_demo_warehouse
from tests.contract.servers import PG_HOST, PG_PORT, postgres_database, writable
from tests.integration.compose_native import NativeStack, tool_shims
from tests.unit.test_deploy import schedule_blocks
from tests.webhook import webhook_receiver
from tests.integration.services import (
    REPO,
    call,
    free_port,
    prefect_env,
    service,
    task_runs,
    trigger,
    wait_for_final_state,
    wait_until_healthy,
)
from tests.shared_builds import model_cache, share_tiny_model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
BUDGET_S = 300  # the whole module, servers included: every wait below ends by then
_deadline = [0.0]


def _left() -> float:
    """Seconds left of the module's budget (at least 1, so a late wait still reports what it waited for)."""
    return max(1.0, _deadline[0] - time.monotonic())
DEPLOYMENT = "retrain-from-config/nightly-retrain"
PASSWORD = "s3cret-Deploy-pw-4171"  # trust auth ignores it; it must still appear nowhere
HOOK_TOKEN = "hook-T0K3N-52aa"  # part of the webhook URL, which is a secret too


@pytest.fixture(scope="module")
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A loopback webhook receiver; the worker's environment holds its URL (with a token) for the configs."""
    with webhook_receiver() as (url, received):
        yield f"{url}/hooks/{HOOK_TOKEN}", received


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, webhook) -> Iterator[tuple[str, str, list[Path]]]:
    """compose.yaml's stack, natively: Prefect and MLflow servers on PostgreSQL, its deploy step, a worker.

    Yields the Prefect API URL, the MLflow tracking URI and the logs to show when a run goes wrong."""
    _deadline[0] = time.monotonic() + BUDGET_S
    folder = tmp_path_factory.mktemp("stack")
    bin_dir = tool_shims(folder)
    with ExitStack() as stack:
        databases = {name: stack.enter_context(postgres_database()) for name in ("mlflow", "prefect")}
        native = NativeStack(folder, {"prefect": free_port(), "mlflow": free_port()}, databases)
        env = {**prefect_env(folder / "prefect-home"), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        api = f"http://127.0.0.1:{native.ports['prefect']}/api"
        tracking = f"http://127.0.0.1:{native.ports['mlflow']}"
        # Both servers start at once (each takes tens of seconds on a busy machine), then both must answer.
        prefect = stack.enter_context(service(native.argv("prefect"), env={**env, **native.environment("prefect")},
                                              log=folder / "prefect.log"))
        mlflow = stack.enter_context(service(native.argv("mlflow"), env=env, log=folder / "mlflow.log"))
        wait_until_healthy(prefect, f"{api}/health", folder / "prefect.log", _left())
        wait_until_healthy(mlflow, f"{tracking}/health", folder / "mlflow.log", _left())
        env.update(native.environment("deploy"))
        deploy = subprocess.run(native.argv("deploy"), cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
        assert deploy.returncode == 0, deploy.stdout[-2000:] + deploy.stderr[-2000:]
        _deploy_to_kubernetes_pool(env)
        worker_env = {**env, **native.environment("worker"), "PG_PASSWORD": PASSWORD, "HOOK_URL": webhook[0],
                      "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "5"}
        stack.enter_context(service(native.argv("worker"), env=worker_env, log=folder / "worker.log"))
        yield api, tracking, [folder / "worker.log", folder / "prefect.log"]


def _deploy_to_kubernetes_pool(env: dict[str, str]) -> None:
    """docs/deploy.md's Kubernetes pool and deployment commands, as written: the server checks the deployment's
    job variables (the CUDA image) against the template's variables. (kubectl and the worker need a cluster.)"""
    (kubernetes,) = schedule_blocks("On Kubernetes")
    for command in [shlex.split(c) for c in kubernetes if c.startswith(("prefect work-pool", "prefect deploy"))]:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"


def _run(api: str, logs: list[Path], config: Path) -> dict:
    flow_run_id = trigger(api, DEPLOYMENT, {"config_path": str(config)})
    return wait_for_final_state(api, flow_run_id, _left(), logs)


def _attempts(api: str, flow_run: dict, task: str) -> int:
    (found,) = [t for t in task_runs(api, flow_run["id"]) if t["name"].startswith(f"{task}-")]
    return found["run_count"]


def _postgres_config(workdir: Path, dsn: str) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "alignloop.yaml"
    config.write_text(yaml.safe_dump({
        "target": "deployed-pg", "base_model": {"tiny": True, "cache_dir": str(model_cache())},
        "notify": {"webhook_url": "${HOOK_URL}"},
        "sources": [{"name": "pg_prefs", "connector": "postgres", "shape": "preference",
                     "options": {"dsn": dsn, "connect_timeout": 2},
                     "mapping": {"rows": {"table": "prefs", "ts": "ts", "prompt": "question", "chosen": "good",
                                          "rejected": "bad"}}}]}))
    return config


def test_a_deployed_run_registers_a_version_and_a_rerun_without_new_feedback_trains_nothing(deployed, tmp_path):
    api, tracking, logs = deployed
    write_demo_warehouse(tmp_path / "warehouse.duckdb", n_feedback=200, n_prompts=30)
    config = share_tiny_model(write_demo_config(tmp_path, tiny=True))
    config.write_text(config.read_text() + f"mlflow:\n  tracking_uri: {tracking}\n")

    first = _run(api, logs, config)
    assert first["state"]["type"] == "COMPLETED", first["state"]
    client = MlflowClient(tracking, registry_uri=tracking)
    (version,) = client.search_model_versions("name='alignloop-demo'")
    assert int(version.version) == 1 == int(client.get_model_version_by_alias("alignloop-demo", "newest").version)

    again = _run(api, logs, config)
    assert again["state"]["type"] == "COMPLETED", again["state"]
    assert len(client.search_model_versions("name='alignloop-demo'")) == 1
    ran = {t["name"].rsplit("-", 1)[0] for t in task_runs(api, again["id"])}
    assert "ingest" in ran and "train" not in ran, ran
    # The skip says why in the run's own state, where a scheduler and a person read it.
    assert again["state"]["name"] == "Skipped", again["state"]
    assert "fewer than schedule.min_new_feedback" in again["state"]["message"], again["state"]


@pytest.mark.reliability
def test_a_source_that_is_down_is_retried_and_the_run_completes_once_it_answers(deployed, webhook, tmp_path,
                                                                                 record_property):
    api, _, logs = deployed
    webhook[1].clear()
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
            run = wait_for_final_state(api, flow_run_id, _left(), logs)
        finally:
            relay.close()
    assert run["state"]["type"] == "COMPLETED", run["state"]
    assert _attempts(api, run, "ingest") == 2
    assert webhook[1] == []  # a run that ends well bothers no one
    record_property("reliability", json.dumps({"fault": "source server unreachable (connection refused), back "
                                               "before the retry", "attempts": 2, "outcome": "Completed"}))


@pytest.mark.reliability
def test_a_source_that_cannot_work_fails_the_run_at_once_notifies_its_reason_and_shows_no_secret(
        deployed, webhook, tmp_path, record_property):
    api, _, logs = deployed
    hook_url, received = webhook
    received.clear()
    config = _postgres_config(tmp_path, "postgresql://postgres:${PG_PASSWORD}@127.0.0.1:5432/alignloop_no_such_db")
    run = _run(api, logs, config)
    assert run["state"]["type"] == "FAILED", run["state"]
    message = run["state"]["message"]
    assert "pg_prefs" in message and "does not exist" in message, message
    assert _attempts(api, run, "ingest") == 1
    ids = [run["id"], *(c["id"] for c in call(api, "/flow_runs/filter",
                                               {"flow_runs": {"parent_flow_run_id": {"any_": [run["id"]]}}}))]
    lines = [entry["message"] for entry in call(api, "/logs/filter", {"logs": {"flow_run_id": {"any_": ids}}})]
    (note,) = received  # the failed run reached someone, with the same one-line reason
    assert note["outcome"] == "failed" and "pg_prefs" in note["reason"] and "does not exist" in note["reason"]
    assert note["path"] == f"/hooks/{HOOK_TOKEN}"
    shown = [message, note["text"], logs[0].read_text(), *lines]
    leaked = [text for text in shown if PASSWORD in text or HOOK_TOKEN in text]
    record_property("reliability", json.dumps({
        "fault": "terminal source error (database does not exist) in a deployed run", "attempts": 1,
        "outcome": "Failed, notified", "secrets_leaked": len(leaked), "texts_checked": len(shown)}))
    assert lines and not leaked


def _wait_for_task_state(api: str, flow_run_id: str, task: str, state_name: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + _left()
    while time.monotonic() < deadline:
        states = [t["state"]["name"] for t in task_runs(api, flow_run_id)
                  if t["name"].startswith(f"{task}-") and t["state"]]
        if state_name in states:
            return
        time.sleep(0.5)
    raise AssertionError(f"task {task} never reached {state_name}: {logs[0].read_text()[-3000:]}")


def test_a_feedback_arrived_event_starts_a_run_of_the_deployment_with_the_events_config(deployed, tmp_path):
    api, _, logs = deployed
    write_demo_warehouse(tmp_path / "warehouse.duckdb", n_feedback=40, n_prompts=8)
    config = share_tiny_model(write_demo_config(tmp_path, tiny=True))  # too little feedback to train: the run skips itself
    deployment = call(api, f"/deployments/name/{DEPLOYMENT}")["id"]
    now = datetime.now(UTC)
    window = {"after_": now.isoformat(), "before_": (now + timedelta(minutes=5)).isoformat()}  # not tonight's run
    emit = [sys.executable, "-m", "prefect", "events", "emit", "alignloop.feedback.arrived",
            "--resource-id", "alignloop.target.alignloop-demo", "--payload", json.dumps({"config_path": str(config)})]
    done = subprocess.run(emit, cwd=REPO, env=prefect_env(tmp_path / "home", api), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    deadline = time.monotonic() + _left()
    while not (runs := call(api, "/flow_runs/filter", {"flow_runs": {
            "deployment_id": {"any_": [deployment]}, "expected_start_time": window}})):
        assert time.monotonic() < deadline, "no run started after the event"
        time.sleep(1)
    run = wait_for_final_state(api, runs[0]["id"], _left(), logs)
    assert run["state"]["type"] == "COMPLETED", run["state"]
    assert run["parameters"]["config_path"] == str(config)
    assert (tmp_path / "feedback.duckdb").exists()  # it ran on the event's config


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
