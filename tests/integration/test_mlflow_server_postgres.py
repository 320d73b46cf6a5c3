"""The registry against a real `mlflow server` whose backend store is the local PostgreSQL: register,
promote through the gate, roll back; the server-side registry lock comes and goes. The test creates
its own database and drops it afterwards."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from alignloop import registry
from alignloop.config import PromotionSettings
from alignloop.errors import TerminalError
from alignloop.gate import registry_check
from tests.unit.eval_reports import eval_report
from tests.unit.test_promotion import TARGET, _register_report

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def _pg_admin():
    import psycopg

    try:
        return psycopg.connect(dbname="postgres", connect_timeout=5, autocommit=True, **PG)
    except psycopg.OperationalError as e:
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 (user postgres) is not reachable; start it first: {e}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path: Path):
    database = f"alignloop_mlflow_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin()
    admin.execute(f'CREATE DATABASE "{database}"')
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "server",
         "--backend-store-uri", f"postgresql://postgres@127.0.0.1:5432/{database}",
         "--artifacts-destination", (tmp_path / "artifacts").as_uri(),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield uri
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        log.close()
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


@pytest.mark.slow
def test_register_promote_and_roll_back_through_an_mlflow_server_on_postgresql(mlflow_server, tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4}')
    (adapter / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 4)
    check = registry_check(PromotionSettings())

    first = _register_report(mlflow_server, adapter, eval_report(), "r1", same_as=[{"run_folder": "r1"}])
    assert registry.promote(mlflow_server, TARGET, check=check).version == first.version == 1
    worse = eval_report(champion_version=1, champion_delta=(-0.05, -0.09, -0.01))
    assert _register_report(mlflow_server, adapter, worse, "r2").version == 2
    with pytest.raises(TerminalError, match="version 2 is not promoted"):
        registry.promote(mlflow_server, TARGET, 2, check=check)
    forced = registry.promote(mlflow_server, TARGET, 2, check=check, force_reason="load test of the rollback path")
    assert forced.version == 2
    assert registry.rollback(mlflow_server, TARGET).version == 1

    rows = {r["version"]: r for r in registry.describe(mlflow_server, TARGET)}
    assert {v: r["aliases"] for v, r in rows.items()} == {1: ["champion"], 2: ["newest"]}
    assert all(r["complete"] for r in rows.values())
    assert rows[2]["tags"]["alignloop.promotion.forced_reason"] == "load test of the rollback path"
    again = _register_report(mlflow_server, adapter, eval_report(), "r1", same_as=[{"run_folder": "r1"}])
    assert (again.version, again.reused) == (1, True)
    # The server-side lock is a registered model that exists only while someone holds it.
    names = [m.name for m in MlflowClient(mlflow_server, mlflow_server).search_registered_models()]
    assert names == [TARGET]
