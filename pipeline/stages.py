"""The stages of a retraining run as plain functions: ingest, plan, train, evaluate, register.

Each stage reads what the one before it wrote into the run folder (runs/<id>/), so stages can run
one at a time from the CLI or all together in the Prefect flow, with the same results.
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.base import ConnectorError, load_connector
from pipeline.config import Settings, describe_validation_error
from pipeline.errors import ConfigError, DataError, TerminalError, TransientError
from pipeline.planner import Plan, choose_method
from pipeline.shape import measure_shape
from pipeline.store import FeedbackStore, IngestResult, Snapshot, check_store_is_not_a_source

if TYPE_CHECKING:  # training-side modules import torch and datasets: `alignloop ingest` must not pay for them
    from pipeline.datasets import Split
    from pipeline.evaluate import EvalReport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedRun:
    """A run folder after planning: the snapshot it reads, its shape and its plan."""

    run_dir: Path
    snapshot: Snapshot
    plan: Plan

    @property
    def run_id(self) -> str:
        return self.run_dir.name


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, default=str, sort_keys=False) + "\n")


def _read_json(path: Path) -> Any:
    if not path.exists():
        raise TerminalError(f"{path} is missing: run the earlier stage first (alignloop plan / train)")
    return json.loads(path.read_text())


# ---------------------------------------------------------------------------------------------- ingest
def build_connector(source) -> Any:
    """The connector instance a source's settings describe; bad options are ConfigErrors naming them."""
    from pydantic import ValidationError

    try:
        cls = load_connector(source.connector)
    except ConnectorError as e:
        raise ConfigError(f"sources[{source.name}].connector: {e}") from None
    try:
        return cls(cls.Settings.model_validate(source.options))
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e, prefix=f"sources[{source.name}].options.")) from None


def ingest(settings: Settings) -> list[IngestResult]:
    """Bring every source's new rows into the store (one atomic batch per source)."""
    results = []
    # Before anything is opened for writing: a store that is a source's own file would corrupt it.
    check_store_is_not_a_source(settings.store_path, settings.sources)
    with FeedbackStore(settings.store_path) as store:
        for source in settings.sources:
            connector = build_connector(source)
            try:
                connector.check()
            except ConnectorError as e:
                kind = TransientError if e.transient else TerminalError
                raise kind(f"source {source.name!r}: {e}") from None
            results.append(store.ingest(source, connector, settings=settings.ingest))
    return results


# ---------------------------------------------------------------------------------------------- plan
def _read_snapshot(settings: Settings, snapshot_id: str | None = None) -> tuple[Snapshot, Any, Any]:
    """A snapshot (a new one when no id is given) and its (unpaired, pairs) rows."""
    with FeedbackStore(settings.store_path) as store:
        snapshot = store.get_snapshot(snapshot_id) if snapshot_id else store.snapshot()
        unpaired, pairs = store.read_snapshot(snapshot)
    return snapshot, unpaired, pairs


def _load_split(settings: Settings, snapshot_id: str) -> Split:
    from pipeline.datasets import split_snapshot

    _, unpaired, pairs = _read_snapshot(settings, snapshot_id)
    return split_snapshot(unpaired, pairs, settings.evaluation.holdout_fraction,
                          settings.training.max_train_examples)


def plan(settings: Settings) -> PlannedRun:
    """Snapshot the store, measure its shape, choose the method; write plan.json in a new run folder."""
    snapshot, unpaired, pairs = _read_snapshot(settings)
    if snapshot.n_pairs + snapshot.n_unpaired == 0:
        log.warning("the feedback store %s is empty; run `alignloop ingest` first", settings.store_path)
    shape = measure_shape(unpaired, pairs, settings.evaluation.holdout_fraction)
    the_plan = choose_method(shape, settings.training, settings.planning)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    run_dir = settings.runs_dir / f"{stamp}-{snapshot.snapshot_id[:8]}"
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_json(run_dir / "snapshot.json", asdict(snapshot))
    _write_json(run_dir / "plan.json", the_plan.to_dict())
    (settings.runs_dir / "LATEST").write_text(run_dir.name + "\n")
    return PlannedRun(run_dir, snapshot, the_plan)


def latest_run(settings: Settings, run: str | None = None) -> PlannedRun:
    """A run folder by name, or the latest one planned."""
    if run is None:
        marker = settings.runs_dir / "LATEST"
        if not marker.exists():
            raise TerminalError(f"no planned run under {settings.runs_dir}: run `alignloop plan` first")
        run = marker.read_text().strip()
    run_dir = settings.runs_dir / run
    snap = _read_json(run_dir / "snapshot.json")
    snap["created_at"] = datetime.fromisoformat(snap["created_at"])
    p = _read_json(run_dir / "plan.json")
    return PlannedRun(run_dir, Snapshot(**snap), Plan(p["method"], p["hyperparameters"], tuple(p["reasons"]), p["shape"]))


# ---------------------------------------------------------------------------------------------- train
def base_model_dir(settings: Settings) -> Path:
    from pipeline.models import resolve_base_model

    return resolve_base_model(settings.base_model, settings.model_cache_dir)


def train(settings: Settings, planned: PlannedRun, progress=None) -> dict[str, Any]:
    """Train the candidate the plan describes; write train.json beside it."""
    from pipeline.train import train_candidate

    if planned.plan.method == "skip":
        raise DataError("the plan is to skip training: " + planned.plan.reasons[-1])
    split = _load_split(settings, planned.snapshot.snapshot_id)
    result = train_candidate(planned.plan, split, base_model_dir(settings), planned.run_dir,
                             device=settings.training.device, progress=progress)
    summary = {**asdict(result), "model_dir": str(result.model_dir), "final_loss": result.final_loss}
    _write_json(planned.run_dir / "train.json", summary)
    return summary


# ---------------------------------------------------------------------------------------------- evaluate
def evaluate(settings: Settings, planned: PlannedRun, on_progress=None) -> EvalReport:
    """Score reference and candidate on the held-out split; write eval_report.json."""
    from pipeline.datasets import holdout_eval_pairs
    from pipeline.evaluate import evaluate_candidate

    split = _load_split(settings, planned.snapshot.snapshot_id)
    pairs = holdout_eval_pairs(split, settings.evaluation.max_examples)
    if not pairs:
        raise DataError(
            "no held-out pairs to evaluate on: the holdout split has no comparisons and no prompt with both "
            "an up- and a down-rated answer; raise evaluation.holdout_fraction or collect more feedback"
        )
    candidate_dir = planned.run_dir / "candidate"
    if not candidate_dir.exists():
        raise TerminalError(f"{candidate_dir} is missing: run `alignloop train` first")
    report = evaluate_candidate(
        candidate_dir, base_model_dir(settings), pairs, beta=float(planned.plan.hyperparameters["beta"]),
        batch_size=settings.evaluation.batch_size, max_length=settings.training.max_length,
        device=settings.training.device, on_progress=on_progress,
    )
    _write_json(planned.run_dir / "eval_report.json", report.to_dict())
    return report


# ---------------------------------------------------------------------------------------------- register
def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def already_registered(settings: Settings, planned: PlannedRun) -> int | None:
    """The version already trained from this snapshot with these settings, if any: retraining it
    would only spend compute on a copy."""
    from pipeline.registry import describe

    for version in describe(settings.tracking_uri, settings.target):
        tags = version["tags"]
        if (tags.get("alignloop.snapshot_id") == planned.snapshot.snapshot_id
                and tags.get("alignloop.config_hash") == settings.config_hash()):
            return int(version["version"])
    return None


def register(settings: Settings, planned: PlannedRun):
    """Log the run to MLflow and register the candidate as a new version with alias challenger."""
    from pipeline.models import describe_base_model
    from pipeline.registry import log_and_register

    trained = _read_json(planned.run_dir / "train.json")
    report = _read_json(planned.run_dir / "eval_report.json")
    with FeedbackStore(settings.store_path) as store:
        cursors = store.source_cursors()
    plan_d = planned.plan.to_dict()
    metrics = {**report["metrics"], "train_runtime_s": float(trained["runtime_s"]),
               "train_rows": float(trained["n_train"])}
    if trained.get("final_loss") is not None:
        metrics["train_final_loss"] = float(trained["final_loss"])
    step_metrics = [{"step": h["step"], **{f"train_{k}": v for k, v in h.items() if k not in ("step", "epoch")}}
                    for h in trained["history"] if "step" in h]
    params = {"method": planned.plan.method, "base_model": describe_base_model(settings.base_model),
              "snapshot_id": planned.snapshot.snapshot_id, "device": trained["device"],
              **{f"hp.{k}": v for k, v in planned.plan.hyperparameters.items()}}
    lineage = {
        "snapshot_id": planned.snapshot.snapshot_id,
        "method": planned.plan.method,
        "config_hash": settings.config_hash(),
        "git_sha": git_sha(),
        "cursors": json.dumps(cursors, sort_keys=True),
        "eval_set_hash": report["eval_set_hash"],
        "run_folder": planned.run_id,
    }
    version = log_and_register(
        tracking_uri=settings.tracking_uri, experiment=settings.experiment_name, target=settings.target,
        run_name=planned.run_id, params=params, metrics=metrics, step_metrics=step_metrics,
        json_artifacts={"plan": plan_d, "shape": plan_d["shape"], "eval_report": report, "train": trained},
        model_dir=Path(trained["model_dir"]),
        model_info={"kind": trained["kind"], "base_model": describe_base_model(settings.base_model),
                    "base_model_path": str(base_model_dir(settings)), "method": planned.plan.method},
        lineage=lineage,
    )
    _write_json(planned.run_dir / "registered.json", asdict(version))
    return version
