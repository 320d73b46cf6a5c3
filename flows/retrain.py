"""The `retrain` flow: ingest -> trigger -> plan -> train -> evaluate -> register, one Prefect task each.

Tasks are thin wrappers over alignloop.stages; policy sits on their decorators: the I/O stages
retry on TransientError only. Run in-process: `python -m alignloop.flows.retrain alignloop.yaml`.

Every run ends in a state that says what happened, in its name and its message, so a scheduler or a
person reads the outcome without opening logs: "Completed" (registered, the gate passed), "Gated out"
(registered, the gate refused it), "Skipped" (why), or Failed (the one-line error). Each stage that ran
leaves a markdown artifact (flows/artifacts.py).

Prefect stores a flow run's parameters in its database. Deployments pass the config path
(`retrain_from_config`); when Settings are passed, Prefect stores their JSON dump, in which every
secret is masked (SecretStr fields, secret-named connector options), so no password reaches it.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, State

from alignloop import notify, secrets, stages
from alignloop.config import Settings, load_settings
from alignloop.errors import TransientError, disk_full_is_terminal
from alignloop.flows import artifacts, logs, progress
from alignloop.triggers import TriggerDecision, decide_retrain

PASSED, GATED_OUT, SKIPPED = "passed", "gated_out", "skipped"
STATE_NAMES = {PASSED: "Completed", GATED_OUT: "Gated out", SKIPPED: "Skipped"}


def _retry_if_transient(task, task_run, state) -> bool:
    try:
        state.result()
    except TransientError:
        return True
    except Exception:
        return False
    return False


def _no_room_is_terminal(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A task body whose write finds the disk full fails with that one line, not a storage library's traceback."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with disk_full_is_terminal():
            return fn(*args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class RetrainOutcome:
    run_id: str | None  # the run folder; None when the run skipped before planning (none was written)
    method: str
    reasons: list[str]
    ingested: list[dict[str, Any]]
    metrics: dict[str, float]
    registered: dict[str, Any] | None
    status: str = SKIPPED  # passed | gated_out | skipped
    headline: str = ""  # the outcome in one line: the flow run's state message

    @property
    def trained(self) -> bool:
        return self.registered is not None


def _skipped(run_id: str | None, method: str, reasons: list[str], ingested: list[dict[str, Any]],
             why: str) -> RetrainOutcome:
    return RetrainOutcome(run_id, method, reasons, ingested, {}, None, SKIPPED, f"skipped: {why.removeprefix('skip: ')}")


def _registered_outcome(planned, reasons: list[str], ingested: list[dict[str, Any]], metrics: dict[str, float],
                        registered: dict[str, Any]) -> RetrainOutcome:
    gate = registered["gate"]
    status = PASSED if gate["verdict"] == "pass" else GATED_OUT
    # The first check that kept it from passing, without its mark ("fail: ", "unmeasured: "): the verdict says it.
    refused = next((line.split(": ", 1)[-1] for line in gate["reasons"] if not line.startswith("pass")), "")
    promoted = ", promoted to champion" if registered.get("auto_promoted") else ""
    headline = (f"registered {registered['name']} version {registered['version']} "
                f"@ {', '.join(registered['aliases']) or 'no alias'} ({planned.plan.method}); gate {gate['verdict']}"
                + (f": {refused}" if status == GATED_OUT and refused else "") + promoted)
    return RetrainOutcome(planned.run_id, planned.plan.method, reasons, ingested, metrics, registered, status, headline)


@task(name="ingest", retries=2, retry_delay_seconds=10, retry_condition_fn=_retry_if_transient, cache_policy=NO_CACHE)
@_no_room_is_terminal
def ingest_task(settings: Settings):
    progress.stage("ingest", f"{len(settings.sources)} source(s)")
    results = stages.ingest(settings)
    artifacts.publish("ingest", artifacts.ingest_markdown([asdict(r) for r in results], _quarantined(settings, results)),
                      "rows read, feedback added and quarantined per source")
    return results


def _quarantined(settings: Settings, results) -> dict[str, list[tuple[str, int]]]:
    """Per source, (reason, rows) quarantined by this run's batch."""
    from alignloop.ingest.store import FeedbackStore

    with FeedbackStore(settings.store_path) as store:
        return {r.source: store.quarantine_reasons(r.source, r.batch_id) for r in results}


@task(name="trigger", retries=2, retry_delay_seconds=5, retry_condition_fn=_retry_if_transient, cache_policy=NO_CACHE)
@_no_room_is_terminal
def trigger_task(settings: Settings, force: bool) -> TriggerDecision:
    decision = decide_retrain(settings, force=force)
    progress.stage("trigger", decision.reason)
    return decision


@task(name="plan", cache_policy=NO_CACHE)
@_no_room_is_terminal
def plan_task(settings: Settings):
    progress.stage("plan")
    planned = stages.plan(settings)
    logs.set_run_id(planned.run_id)
    artifacts.publish("plan", artifacts.plan_markdown(planned.run_id, planned.snapshot.snapshot_id,
                                                      planned.plan.to_dict()), "the data's shape and the method chosen")
    return planned


@task(name="train", cache_policy=NO_CACHE)
@_no_room_is_terminal
def train_task(settings: Settings, planned, config_path: str | None = None):
    progress.stage("train", f"{planned.plan.method}, {planned.plan.hyperparameters['max_steps']} steps")
    t = settings.training
    if t.processes > 1:  # one process per GPU, under `accelerate launch`; this process waits for them
        trained = stages.train_launched(settings, planned, config_path and Path(config_path), t.processes,
                                        t.accelerate_config)
    else:
        trained = stages.train(settings, planned, progress=progress.train_step)
    for note in trained.get("notes", []):  # max_length, truncated rows, KTO weights: nothing cut unseen
        progress.stage("trained", note)
    return trained


@task(name="evaluate", cache_policy=NO_CACHE)
@_no_room_is_terminal
def evaluate_task(settings: Settings, planned):
    progress.stage("evaluate")
    report = stages.evaluate(settings, planned, on_progress=progress.eval_progress)
    artifacts.publish("evaluation", artifacts.evaluation_markdown(report.metrics()),
                      "held-out evaluation with 95% intervals")
    return report


@task(name="register", retries=2, retry_delay_seconds=5, retry_condition_fn=_retry_if_transient, cache_policy=NO_CACHE)
@_no_room_is_terminal
def register_task(settings: Settings, planned, allow_same_snapshot: bool = False):
    progress.stage("register")
    version = stages.register(settings, planned, allow_same_snapshot=allow_same_snapshot)
    gate = json.loads((planned.run_dir / "registered.json").read_text())["gate"]
    artifacts.publish("gate", artifacts.gate_markdown(gate), "the promotion gate's verdict, check by check")
    return version


@task(name="check-registry", retries=2, retry_delay_seconds=5, retry_condition_fn=_retry_if_transient,
      cache_policy=NO_CACHE)
@_no_room_is_terminal
def already_registered_task(settings: Settings, planned):
    return stages.already_registered(settings, planned)


@flow(name="retrain", validate_parameters=False)
def retrain(settings: Settings, force: bool = False, config_path: str | None = None) -> State:
    """One scheduled retraining: skips when too little arrived since the latest version, when the data is too
    thin, or when the snapshot is already registered. Called directly, it returns the RetrainOutcome.

    Holds the target's registry lock throughout, so a second run of the same target waits (up to
    promotion.lock_wait_s) and then finds this run's version instead of training a copy of it. config_path:
    the file the settings came from, which training processes read when training.processes is above 1."""
    from alignloop.registry import target_lock

    # Deployments start here, not in the CLI: mask secrets in every log line and warning of the run.
    secrets.install()
    secrets.remember(*settings.secret_values())
    logs.install_run_filters()
    logs.set_run_id(None)
    try:
        with disk_full_is_terminal():
            with target_lock(settings.tracking_uri, settings.model_name, wait_s=settings.promotion.lock_wait_s):
                outcome = _retrain(settings, force, config_path)
            _publish_outcome(settings, outcome)
    except Exception as e:  # a person hears of it (notify.webhook_url), then the run fails as it would
        notify.run_failed(settings, None, e)
        raise
    notify.run_finished(settings, outcome.run_id, outcome.registered)
    return Completed(data=outcome, message=outcome.headline, name=STATE_NAMES[outcome.status])


def _retrain(settings: Settings, force: bool, config_path: str | None) -> RetrainOutcome:
    ingested = [asdict(r) for r in ingest_task(settings)]
    decision = trigger_task(settings, force)
    if not decision.train:
        return _skipped(None, "skip", [decision.reason], ingested, decision.reason)
    stages.precisions(settings)  # refused here, not after an hour of training
    planned = plan_task(settings)
    reasons = [decision.reason, *planned.plan.reasons]
    if planned.plan.method == "skip":
        return _skipped(planned.run_id, "skip", reasons, ingested, planned.plan.reasons[-1])
    existing = None if force else already_registered_task(settings, planned)
    if existing is not None:
        why = (f"snapshot {planned.snapshot.snapshot_id[:12]} with these settings is already version {existing}; "
               "nothing new to learn (use --force to train again)")
        return _skipped(planned.run_id, "skip", [*reasons, f"skip: {why}"], ingested, why)
    trained = train_task(settings, planned, config_path)
    report = evaluate_task(settings, planned)
    version = register_task(settings, planned, allow_same_snapshot=force)
    metrics = {**report.metrics(), "train_runtime_s": trained["runtime_s"]}
    # registered.json adds the gate's verdict, whether it was auto-promoted, and the review page.
    registered = {**json.loads((planned.run_dir / "registered.json").read_text()), **asdict(version)}
    return _registered_outcome(planned, reasons, ingested, metrics, registered)


def _publish_outcome(settings: Settings, outcome: RetrainOutcome) -> None:
    link_rows = []
    if outcome.registered:
        link_rows = artifacts.links(settings.shown_tracking_uri, outcome.registered, _experiment_id(settings, outcome))
    artifacts.publish("outcome", artifacts.outcome_markdown(outcome.headline, outcome.reasons, link_rows),
                      "what this run did, and where to look")


def _experiment_id(settings: Settings, outcome: RetrainOutcome) -> str | None:
    """The MLflow experiment of the registered run, for a web link; None unless MLflow is a server."""
    if not settings.tracking_uri.startswith(("http://", "https://")):
        return None
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient(settings.tracking_uri).get_run(outcome.registered["run_id"]).info.experiment_id
    except MlflowException:  # a link the artifact can do without
        return None


@flow(name="retrain-from-config")
def retrain_from_config(config_path: str, force: bool = False) -> State:
    """Entry point for deployments: parameters must be plain values, so it takes the config path. Ends in
    the same state as the retrain run inside it, with the outcome as a plain mapping."""
    inner = retrain(load_settings(config_path), force=force, config_path=config_path, return_state=True)
    outcome = inner.result()
    return Completed(data=asdict(outcome), message=inner.message, name=inner.name)


if __name__ == "__main__":
    from alignloop.flows.prefect_api import prefect_api

    with prefect_api():
        print(retrain_from_config(sys.argv[1] if len(sys.argv) > 1 else "alignloop.yaml"))
