"""Faults a nightly job meets, injected into real runs of `alignloop run` (the console script, a Prefect
server on loopback, the tiny model): kill -9 right after each stage, a full disk, the Prefect API down,
two runs at once. After each, the store holds every source row exactly once and the registry holds
one complete version. Figures are recorded for RELIABILITY.md (`alignloop bench reliability`)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from mlflow import MlflowClient

from alignloop.demo import write_demo_config, write_demo_warehouse
from tests.integration.services import call, free_port, prefect_env, service, wait_until_healthy
from tests.shared_builds import share_tiny_model

pytestmark = [pytest.mark.slow, pytest.mark.reliability, pytest.mark.timeout(600)]
STAGES = ("ingest", "plan", "train", "evaluate", "register")  # Prefect task names, in flow order


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    """One Prefect server (its own SQLite database) for every run here: runs start fast and report their tasks."""
    folder = tmp_path_factory.mktemp("prefect")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with service(argv, env=prefect_env(folder / "home"), log=folder / "server.log") as proc:
        wait_until_healthy(proc, f"{api}/health", folder / "server.log")
        yield api


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    write_demo_warehouse(path, n_feedback=240, n_prompts=32)
    return path


def _workdir(base: Path, warehouse: Path) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    shutil.copy(warehouse, base / "warehouse.duckdb")
    return share_tiny_model(write_demo_config(base, tiny=True))


def _start(config: Path, api: str, *command: str, limit_file_bytes: int | None = None,
           **extra_env: str) -> subprocess.Popen:
    env = prefect_env(config.parent / "prefect-home", api, **extra_env)
    preexec = None
    if limit_file_bytes is not None:
        def preexec() -> None:  # a disk that fills: writes past this size fail with EFBIG ("File too large")
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_bytes, limit_file_bytes))
    return subprocess.Popen([sys.executable, "-m", "alignloop.cli.main", *(command or ("run",)), "--config", str(config)],
                            cwd=config.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=preexec)


def _finish(proc: subprocess.Popen, timeout_s: float = 420) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout_s)
    return proc.returncode, out


def _task_completed(api: str, task: str, since: str) -> bool:
    found = call(api, "/task_runs/filter", {"task_runs": {"name": {"like_": f"{task}-"}, "start_time": {"after_": since},
                                                          "state": {"type": {"any_": ["COMPLETED"]}}}})
    return any(t["name"].rsplit("-", 1)[0] == task for t in found)


def _kill_after(proc: subprocess.Popen, api: str, task: str, since: str, timeout_s: float = 420) -> None:
    """SIGKILL the run's whole process group as soon as Prefect records `task` completed."""
    deadline = time.monotonic() + timeout_s
    while not _task_completed(api, task, since):
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {task} completed: {proc.stdout.read()[-3000:]}")
        assert time.monotonic() < deadline, f"{task} did not complete within {timeout_s:.0f} s"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _store_rows(config: Path) -> list[str]:
    """Every canonical row's event_id in the run's store (pairs, unpaired and ranked rows)."""
    con = duckdb.connect(str(config.parent / "feedback.duckdb"), read_only=True)
    try:
        tables = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        return [e for t in ("pairs", "unpaired", "ranks", "ties") if t in tables
                for (e,) in con.execute(f'SELECT event_id FROM "{t}"').fetchall()]
    finally:
        con.close()


def _versions(config: Path) -> list:
    client = MlflowClient(f"sqlite:///{config.parent / 'mlflow.db'}")
    return client.search_model_versions("name='alignloop-demo'")


@pytest.fixture(scope="module")
def reference_rows(tmp_path_factory, warehouse, prefect_api) -> set[str]:
    """The rows one undisturbed ingest stores from the same warehouse."""
    config = _workdir(tmp_path_factory.mktemp("reference"), warehouse)
    code, out = _finish(_start(config, prefect_api, "ingest"))
    assert code == 0, out[-3000:]
    rows = _store_rows(config)
    assert rows and len(rows) == len(set(rows))
    return set(rows)


def _record_rows(record_property, fault: str, rows: list[str], reference: set[str], **extra) -> None:
    lost, duplicated = len(reference - set(rows)), len(rows) - len(set(rows))
    record_property("reliability", json.dumps({"fault": fault, "rows_lost": lost, "rows_duplicated": duplicated,
                                               "rows_expected": len(reference), **extra}))
    assert (lost, duplicated) == (0, 0), f"{fault}: {lost} rows lost, {duplicated} duplicated"


def test_kill_9_right_after_each_stage_then_a_rerun_loses_nothing_and_registers_one_version(
        tmp_path, warehouse, prefect_api, reference_rows, record_property):
    config = _workdir(tmp_path / "work", warehouse)
    for task in STAGES:
        since = datetime.now(UTC).isoformat()
        _kill_after(_start(config, prefect_api), prefect_api, task, since)
    code, out = _finish(_start(config, prefect_api))
    assert "Traceback" not in out, out[-3000:]
    versions = _versions(config)
    assert len(versions) == 1, f"{len(versions)} versions after the kills: {out[-2000:]}"
    _record_rows(record_property, "kill -9 after each stage (ingest, plan, train, evaluate, register), then a rerun",
                 _store_rows(config), reference_rows, kills=len(STAGES), versions=len(versions))


def test_a_full_disk_during_ingest_merges_nothing_partial_and_the_next_ingest_loads_every_row(
        tmp_path, warehouse, prefect_api, reference_rows, record_property):
    config = _workdir(tmp_path / "work", warehouse)
    code, out = _finish(_start(config, prefect_api, "ingest", limit_file_bytes=300_000))
    assert code != 0, "an ingest that cannot write its store must fail"
    partial = _store_rows(config) if (config.parent / "feedback.duckdb").exists() else []
    assert partial == [] or set(partial) <= reference_rows
    code, out = _finish(_start(config, prefect_api, "ingest"))
    assert code == 0, out[-3000:]
    _record_rows(record_property, "disk full (file size limit) during ingest, then an ingest with room",
                 _store_rows(config), reference_rows)


def test_the_prefect_api_down_fails_the_run_before_it_reads_a_row_and_a_later_run_completes(
        tmp_path, warehouse, prefect_api, reference_rows, record_property):
    config = _workdir(tmp_path / "work", warehouse)
    down = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    code, out = _finish(_start(config, down, ALIGNLOOP_PREFECT_API_WAIT_SECONDS="2"), timeout_s=300)
    assert code != 0, out[-3000:]
    assert "cannot be reached within 2 s" in out, out[-3000:]
    assert not (config.parent / "feedback.duckdb").exists() or _store_rows(config) == []
    code, out = _finish(_start(config, prefect_api))
    assert _versions(config), out[-3000:]
    _record_rows(record_property, "Prefect API unreachable, then a run with it back", _store_rows(config),
                 reference_rows)


def test_two_runs_at_once_register_one_version_and_store_each_row_once(
        tmp_path, warehouse, prefect_api, reference_rows, record_property):
    config = _workdir(tmp_path / "work", warehouse)
    runs = [_start(config, prefect_api) for _ in range(2)]
    results = [_finish(r) for r in runs]
    # The winner registers: 0 when the gate passed it, 3 when it registered but was gated out.
    assert any(code in (0, 3) for code, _ in results), results[0][1][-2000:] + results[1][1][-2000:]
    versions = _versions(config)
    assert len(versions) == 1, f"{len(versions)} versions from two concurrent runs"
    _record_rows(record_property, "two runs of one target at once", _store_rows(config), reference_rows,
                 versions=len(versions))
