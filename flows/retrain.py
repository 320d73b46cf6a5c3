"""The `retrain` flow: ingest -> plan -> train -> evaluate -> register, one Prefect task each.

Tasks are thin wrappers over alignloop.stages; policy sits on their decorators: the I/O stages
retry on TransientError only. Run in-process: `python -m alignloop.flows.retrain alignloop.yaml`.

Prefect stores a flow run's parameters in its database. Deployments pass the config path
(`retrain_from_config`); when Settings are passed, Prefect stores their JSON dump, in which every
secret is masked (SecretStr fields, secret-named connector options), so no password reaches it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from alignloop.flows import progress
from alignloop import notify, secrets, stages
from alignloop.config import Settings, load_settings
from alignloop.errors import TransientError


def _retry_if_transient(task, task_run, state) -> bool:
    try:
        state.result()
    except TransientError:
        return True
    except Exception:
        return False
    return False


@dataclass(frozen=True)
class RetrainOutcome:
    run_id: str
    method: str
    reasons: list[str]
    ingested: list[dict[str, Any]]
    metrics: dict[str, float]
    registered: dict[str, Any] | None

    @property
    def trained(self) -> bool:
        return self.registered is not None


@task(name="ingest", retries=2, retry_delay_seconds=10, retry_condition_fn=_retry_if_transient, cache_policy=NO_CACHE)
def ingest_task(settings: Settings):
    progress.stage("ingest", f"{len(settings.sources)} source(s)")
    return stages.ingest(settings)


@task(name="plan", cache_policy=NO_CACHE)
def plan_task(settings: Settings):
    progress.stage("plan")
    return stages.plan(settings)


@task(name="train", cache_policy=NO_CACHE)
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
def evaluate_task(settings: Settings, planned):
    progress.stage("evaluate")
    return stages.evaluate(settings, planned, on_progress=progress.eval_progress)


@task(name="register", retries=2, retry_delay_seconds=5, retry_condition_fn=_retry_if_transient, cache_policy=NO_CACHE)
def register_task(settings: Settings, planned, allow_same_snapshot: bool = False):
    progress.stage("register")
    return stages.register(settings, planned, allow_same_snapshot=allow_same_snapshot)


@task(name="check-registry", retries=2, retry_delay_seconds=5, retry_condition_fn=_retry_if_transient,
      cache_policy=NO_CACHE)
def already_registered_task(settings: Settings, planned):
    return stages.already_registered(settings, planned)


@flow(name="retrain", validate_parameters=False)
def retrain(settings: Settings, force: bool = False, config_path: str | None = None) -> RetrainOutcome:
    """One scheduled retraining: skips when the data is too thin or unchanged since the last version.

    Holds the target's registry lock throughout, so a second run of the same target waits (up to
    promotion.lock_wait_s) and then finds this run's version instead of training a copy of it. config_path:
    the file the settings came from, which training processes read when training.processes is above 1."""
    from alignloop.registry import target_lock

    # Deployments start here, not in the CLI: mask secrets in every log line and warning of the run.
    secrets.install()
    secrets.remember(*settings.secret_values())
    try:
        with target_lock(settings.tracking_uri, settings.model_name, wait_s=settings.promotion.lock_wait_s):
            outcome = _retrain(settings, force, config_path)
    except Exception as e:  # a person hears of it (notify.webhook_url), then the run fails as it would
        notify.run_failed(settings, None, e)
        raise
    notify.run_finished(settings, outcome.run_id, outcome.registered)
    return outcome


def _retrain(settings: Settings, force: bool, config_path: str | None) -> RetrainOutcome:
    ingested = [asdict(r) for r in ingest_task(settings)]
    planned = plan_task(settings)
    if planned.plan.method == "skip":
        return RetrainOutcome(planned.run_id, "skip", list(planned.plan.reasons), ingested, {}, None)
    existing = None if force else already_registered_task(settings, planned)
    if existing is not None:
        reason = (f"skip: snapshot {planned.snapshot.snapshot_id[:12]} with these settings is already version "
                  f"{existing}; nothing new to learn (use --force to train again)")
        return RetrainOutcome(planned.run_id, "skip", [*planned.plan.reasons, reason], ingested, {}, None)
    trained = train_task(settings, planned, config_path)
    report = evaluate_task(settings, planned)
    version = register_task(settings, planned, allow_same_snapshot=force)
    metrics = {**report.metrics(), "train_runtime_s": trained["runtime_s"]}
    # registered.json adds the gate's verdict, whether it was auto-promoted, and the review page.
    registered = {**json.loads((planned.run_dir / "registered.json").read_text()), **asdict(version)}
    return RetrainOutcome(planned.run_id, planned.plan.method, list(planned.plan.reasons), ingested, metrics,
                          registered)


@flow(name="retrain-from-config")
def retrain_from_config(config_path: str, force: bool = False) -> dict[str, Any]:
    """Entry point for deployments: parameters must be plain values, so it takes the config path."""
    return asdict(retrain(load_settings(config_path), force=force, config_path=config_path))


if __name__ == "__main__":
    print(retrain_from_config(sys.argv[1] if len(sys.argv) > 1 else "alignloop.yaml"))
