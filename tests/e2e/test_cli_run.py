"""`alignloop run` as a person at a terminal and as a scheduler see it: clean progress, an exit code per outcome,
a Prefect state that says the same, artifacts to read in the morning, and no traceback for expected failures.

The runs share one workdir, in order: the first trains and passes the gate, the second finds nothing new,
a forced third is refused by a strict gate. Runs that are checked through the Prefect API use a Prefect
server this module starts (PREFECT_API_URL); the terminal runs start their own temporary server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.sorting import FlowRunSort
from prefect.testing.utilities import prefect_test_harness

from alignloop.config import load_settings
from alignloop.demo import write_demo_config, write_demo_warehouse
from alignloop.triggers import decide_retrain
from tests.conftest import make_warehouse
from tests.shared_builds import seeded_prefect_home, share_tiny_model
from tests.terminal import cli, run_in_terminal, run_piped

pytestmark = pytest.mark.slow

# Enough steps for the tiny model to learn the demo users' house style (a clear held-out gain), and a gate that
# reads that gain on the demo's few held-out prompts and leaves the generation checks (a handful of prompts) out.
TRAINING = "  max_steps: 60\n  learning_rate: 0.001\n"
PASSABLE_GATE = ("promotion:\n  min_prompts: 5\n  min_gain_ci_low: 0.0\n  min_judge_win_rate: null\n"
                 "  max_ppl_rise: null\n  max_degenerate_rise: null\n")


@pytest.fixture(scope="module")
def prefect_server():
    """A Prefect API server for the module's piped runs and for reading their flow runs back."""
    with prefect_test_harness(server_startup_timeout=300):
        from prefect.settings import PREFECT_API_URL

        yield PREFECT_API_URL.value()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("run")
    write_demo_warehouse(work / "warehouse.duckdb", n_feedback=600, n_prompts=60)
    config = share_tiny_model(write_demo_config(work, tiny=True))
    config.write_text(config.read_text().replace("  max_steps: 8\n", TRAINING) + PASSABLE_GATE)
    return work


def env_for(work: Path, api_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIGNLOOP__", "PREFECT_API_URL"))}
    env.update(PREFECT_HOME=str(seeded_prefect_home(work / "prefect-home")), COLUMNS="100", **extra)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def flow_runs(name: str = "retrain"):
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(sort=FlowRunSort.EXPECTED_START_TIME_ASC)
        flows = {f.id: f.name for f in client.read_flows()}
    return [r for r in runs if flows.get(r.flow_id) == name]


def artifacts_of(flow_run_id) -> dict[str, str]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {a.key: a.data for a in found if a.key}


@pytest.fixture(scope="module")
def first_run(workdir):
    return run_in_terminal(cli("run", "-c", "alignloop.yaml"), timeout=900, cwd=workdir, env=env_for(workdir))


def test_a_terminal_run_trains_registers_passes_and_exits_0_without_a_traceback(first_run, workdir):
    assert not first_run.timed_out, first_run.output[-3000:]
    assert first_run.code == 0, first_run.output[-3000:]
    assert "RecursionError" not in first_run.output and "Traceback" not in first_run.output
    assert "outcome: registered alignloop-demo version 1" in first_run.output
    assert "gate pass" in first_run.output
    # Scoring the reference before the first step shows in the terminal, where no bar is up yet.
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", first_run.output.replace("\r\n", ""))   # no colours
    assert len(re.findall(r"▶ reference log-probs scoring \d+ distinct rows once before the first step", plain)) == 1, \
        plain[-3000:]   # the run's own: the plan's timed sample keeps its lines to itself
    # A first plan here times a few steps before it states the run's wall time, and says so while it does.
    assert re.search(r"▶ timing the plan 3 \w+ steps on a sample of \d+ training rows", plain), plain[-3000:]
    assert re.search(r"▶ timing the plan \S+ s a step of about \d+ tokens, timed over 3 ", plain), plain[-3000:]


def test_a_terminal_run_with_nothing_new_skips_at_once_exits_4_and_writes_no_run_folder(first_run, workdir):
    folders = sorted(p.name for p in (workdir / "runs").iterdir() if p.is_dir())
    again = run_in_terminal(cli("run", "-c", "alignloop.yaml"), timeout=300, cwd=workdir, env=env_for(workdir))
    assert not again.timed_out, again.output[-3000:]  # it once hung in the progress display's stop
    assert again.code == 4, again.output[-3000:]
    assert "Traceback" not in again.output and "RecursionError" not in again.output
    assert "outcome: skipped: 0 new feedback rows since version 1's snapshot" in again.output.replace("\r\n", "")
    assert sorted(p.name for p in (workdir / "runs").iterdir() if p.is_dir()) == folders


def test_a_few_new_rows_do_not_retrain_but_enough_do(first_run, workdir, monkeypatch):
    # Three thumbs stamped after the demo's logs end (DEMO_END, about 44,640 minutes after T0).
    make_warehouse(workdir / "warehouse.duckdb",
                   generations=[(f"late{i}", 50_000 + i, f"u{i}", "v2", json.dumps([{"role": "user", "content": f"q{i}"}]),
                                 f"answer {i}") for i in range(3)],
                   feedback=[(f"late-f{i}", f"late{i}", 50_005 + i, f"u{i}", "thumb", "up", None) for i in range(3)])
    from alignloop import stages

    settings = load_settings(workdir / "alignloop.yaml")
    stages.ingest(settings)
    decision = decide_retrain(settings)
    assert not decision.train and decision.new_rows == 3 and decision.since_version == 1
    assert "3 new feedback rows since version 1's snapshot" in decision.reason
    monkeypatch.setenv("ALIGNLOOP__SCHEDULE__MIN_NEW_FEEDBACK", "3")
    assert decide_retrain(load_settings(workdir / "alignloop.yaml")).train
    assert decide_retrain(settings, force=True).train
    monkeypatch.delenv("ALIGNLOOP__SCHEDULE__MIN_NEW_FEEDBACK")
    monkeypatch.setenv("ALIGNLOOP__TRAINING__MAX_STEPS", "9")
    changed = decide_retrain(load_settings(workdir / "alignloop.yaml"))
    assert changed.train and changed.reason.startswith("the settings that shape a model changed since version 1")


@pytest.fixture(scope="module")
def gated_out_run(first_run, workdir, prefect_server):
    env = env_for(workdir, prefect_server, ALIGNLOOP__PROMOTION__MIN_GAIN_CI_LOW="0.99")
    done = run_piped(cli("--log-format", "json", "run", "-c", "alignloop.yaml", "--force"), timeout=900,
                     cwd=workdir, env=env)
    return done, max(p.name for p in (workdir / "runs").iterdir() if p.is_dir())  # folders are named by time


def test_a_gated_out_run_exits_3_and_its_flow_run_says_so(gated_out_run):
    gated_out_run, _ = gated_out_run
    assert gated_out_run.returncode == 3, gated_out_run.stderr[-3000:]
    assert "outcome: registered alignloop-demo version 2" in gated_out_run.stdout
    assert "gate fail: candidate − reference preference accuracy" in gated_out_run.stdout.replace("\n", " ")
    (run,) = flow_runs()
    assert run.state.type.value == "COMPLETED" and run.state.name == "Gated out"
    assert run.state.message.startswith("registered alignloop-demo version 2 @ newest (dpo); gate fail")


def test_json_logs_are_one_object_a_line_with_the_flow_run_and_run_folder(gated_out_run):
    gated_out_run, run_folder = gated_out_run
    lines = [json.loads(line) for line in gated_out_run.stderr.splitlines() if line.strip()]
    assert lines, gated_out_run.stderr
    (run,) = flow_runs()
    assert {"time", "level", "logger", "message", "flow_run_id", "run_id"} <= set(lines[0])
    stages = [x for x in lines if x["logger"] == "alignloop.progress"]
    assert [x["message"].split()[0] for x in stages][:3] == ["prefect", "ingest", "trigger"]
    assert {x["run_id"] for x in lines} <= {None, run_folder}
    assert any(x["run_id"] == run_folder and x["logger"] == "alignloop.training.progress" for x in lines)
    assert any(x["flow_run_id"] == str(run.id) for x in lines)


def test_the_morning_artifacts_are_readable_through_the_prefect_api(gated_out_run, workdir):
    (run,) = flow_runs()
    found = artifacts_of(run.id)
    assert set(found) == {"alignloop-ingest", "alignloop-plan", "alignloop-evaluation", "alignloop-gate",
                          "alignloop-outcome"}
    assert "| demo_chat |" in found["alignloop-ingest"] and "quarantined by reason" in found["alignloop-ingest"]
    assert found["alignloop-plan"].startswith("# Plan: dpo") and "## Data shape" in found["alignloop-plan"]
    assert "eval_pref_accuracy_delta" in found["alignloop-evaluation"] and "95% interval" in found["alignloop-evaluation"]
    assert found["alignloop-gate"].startswith("# Gate: FAIL") and "promotion.min_gain_ci_low" in found["alignloop-gate"]
    outcome = found["alignloop-outcome"]
    assert "`models:/alignloop-demo/2`" in outcome and "review.html" in outcome and "MLflow run" in outcome


def test_serve_once_runs_the_deployment_now_and_its_state_says_why_it_skipped(gated_out_run, workdir, prefect_server):
    done = run_piped(cli("serve", "-c", "alignloop.yaml", "--once"), timeout=600, cwd=workdir,
                     env=env_for(workdir, prefect_server))
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    served = flow_runs("retrain-from-config")
    assert len(served) == 1 and served[0].deployment_id is not None
    assert served[0].state.name == "Skipped"
    assert served[0].state.message.startswith("skipped: 0 new feedback rows since version 2's snapshot")
    inner = flow_runs()[-1]
    assert inner.state.name == "Skipped" and "alignloop-outcome" in artifacts_of(inner.id)


def test_a_failing_source_exits_1_with_one_line_and_no_prefect_traceback(workdir, prefect_server):
    broken = workdir / "broken.yaml"
    broken.write_text((workdir / "alignloop.yaml").read_text().replace("warehouse.duckdb", "missing.duckdb")
                      .replace("target: alignloop-demo", "target: broken-demo"))
    done = run_piped(cli("run", "-c", str(broken)), timeout=300, cwd=workdir, env=env_for(workdir, prefect_server))
    assert done.returncode == 1, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and "missing.duckdb" in errors[0], done.stderr
    assert "Traceback" not in done.stderr and "ERROR" not in done.stderr
    failed = flow_runs()[-1]
    assert failed.state.type.value == "FAILED" and "missing.duckdb" in failed.state.message


def test_the_losing_run_of_two_at_once_prints_one_line(workdir, prefect_server):
    winner = subprocess.Popen(cli("run", "-c", "alignloop.yaml", "--force"), cwd=workdir, text=True,
                              env=env_for(workdir, prefect_server), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for line in winner.stderr:  # the winner holds the target's lock from here to register
            if line.startswith("▶ train"):
                break
        loser = run_piped(cli("run", "-c", "alignloop.yaml", "--force"), timeout=300, cwd=workdir,
                          env=env_for(workdir, prefect_server, ALIGNLOOP__PROMOTION__LOCK_WAIT_S="1"))
    finally:
        winner.kill()
        winner.communicate()
    assert loser.returncode == 1, loser.stderr[-3000:]
    lines = [line for line in loser.stderr.splitlines() if "error" in line.lower() or "another" in line]
    assert len(lines) == 1 and "another alignloop run is registering or promoting 'alignloop-demo'" in lines[0]
    assert "Traceback" not in loser.stderr and "ERROR" not in loser.stderr


def test_serve_runs_the_schedule_until_sigterm_then_stops_cleanly_with_its_server(gated_out_run, workdir, tmp_path):
    # With no PREFECT_API_URL, serve starts its own temporary server, with the scheduler that turns the interval
    # into runs; the test reads the runs through that server's API.
    import re
    import signal
    import time

    import psutil
    from prefect.settings import PREFECT_API_URL, temporary_settings

    log = tmp_path / "serve.err"
    with log.open("w") as err:
        served = subprocess.Popen(cli("serve", "-c", "alignloop.yaml", "--interval", "15"), cwd=workdir,
                                  env=env_for(workdir), stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline, skipped, url = time.monotonic() + 400, [], None
        while time.monotonic() < deadline and not skipped:
            time.sleep(3)
            url = url or next(iter(re.findall(r"http://127\.0\.0\.1:\d+/api", log.read_text())), None)
            if url:
                with temporary_settings(updates={PREFECT_API_URL: url}):
                    skipped = [r for r in flow_runs("retrain-from-config") if r.state.name == "Skipped"]
        assert skipped, log.read_text()[-3000:]
        server = next(p for p in psutil.Process(served.pid).children() if "create_app" in " ".join(p.cmdline()))
        served.send_signal(signal.SIGTERM)
        assert served.wait(timeout=120) == 0
        assert not psutil.wait_procs([server], timeout=30)[1], "the temporary server outlived serve"
    finally:
        served.kill()
    assert "Traceback" not in log.read_text() and "ERROR" not in log.read_text()
    assert skipped[0].state.message.startswith("skipped: 0 new feedback rows since version")
