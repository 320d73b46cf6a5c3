"""The stages of a retraining run as plain functions: ingest, plan, train, evaluate, register.

Each stage reads what the one before it wrote into the run folder (runs/<id>/), so stages can run
one at a time from the CLI or all together in the Prefect flow, with the same results.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
from alignloop.connectors.base import ConnectorError, load_connector
from alignloop.config import Settings, describe_validation_error
from alignloop.errors import AlignloopError, ConfigError, DataError, TerminalError, TransientError, disk_full
from alignloop.evaluation.results import EvalReport
from alignloop.planner import Plan, choose_method
from alignloop.ingest.store import FeedbackStore, IngestResult, Snapshot, check_store_is_not_a_source
from alignloop.methods import METHODS
from alignloop.runs import PlannedRun, latest_run, new_run, read_json, write_json
from alignloop.steptime import measured, read_step_times, timed_before_plan, write_step_time

if TYPE_CHECKING:  # training-side modules import torch and datasets: `alignloop ingest` must not pay for them
    from alignloop.datasets import Split

log = logging.getLogger(__name__)


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
    """Bring every source's new rows into the store (one atomic batch per source).

    A source that fails loads nothing and the others still load: the error raised afterwards names each
    failed source and why, and carries the loaded sources' results (`results`). A lone source's error is
    raised as it is."""
    results: list[IngestResult] = []
    failures: list[tuple[str, AlignloopError]] = []
    # Before anything is opened for writing: a store that is a source's own file would corrupt it.
    check_store_is_not_a_source(settings.store_path, settings.sources)
    with FeedbackStore(settings.store_path) as store:
        for source in settings.sources:
            try:
                results.append(_ingest_source(store, source, settings))
            except AlignloopError as e:
                failures.append((source.name, e))
    if not failures:
        return results
    if len(settings.sources) == 1:
        raise failures[0][1]
    raise _sources_failed(failures, results)


def _ingest_source(store: FeedbackStore, source: Any, settings: Settings) -> IngestResult:
    connector = build_connector(source)
    try:
        connector.check()
    except ConnectorError as e:
        kind = TransientError if e.transient else TerminalError
        raise kind(f"source {source.name!r}: {e}") from None
    try:
        return store.ingest(source, connector, settings=settings.ingest)
    except duckdb.Error as e:  # a value no check foresaw: one line naming the source, never a traceback
        no_room = disk_full(e)  # not a bad value but a full disk: its own cause and fix
        if no_room is not None:
            raise no_room from None
        log.info("source %r failed", source.name, exc_info=True)
        first = (str(e).strip().splitlines() or [""])[0]
        raise TerminalError(f"source {source.name!r}: could not be loaded ({type(e).__name__}: {first}); nothing "
                            "of it was merged. Run with --verbose for the details, and report it") from None


def _sources_failed(failures: list[tuple[str, AlignloopError]], results: list[IngestResult]) -> AlignloopError:
    """One error naming every source that failed and why, with the others' results: transient when every
    failure is (a retry may load them), a settings error when every failure is one."""
    errors = [e for _, e in failures]
    kind: type[AlignloopError] = TerminalError
    if all(isinstance(e, TransientError) for e in errors):
        kind = TransientError
    elif all(isinstance(e, ConfigError) for e in errors):
        kind = ConfigError
    said = "; ".join(str(e) if str(e).startswith(f"source {name!r}") else f"source {name!r}: {e}"
                     for name, e in failures)
    loaded = ", ".join(repr(r.source) for r in results)
    error = kind(f"{len(failures)} source(s) failed and merged nothing: {said}. "
                 + (f"The other sources loaded ({loaded})." if loaded else "No other source loaded."))
    error.results = results  # type: ignore[attr-defined]
    return error


# ---------------------------------------------------------------------------------------------- plan
def _read_snapshot(settings: Settings, snapshot_id: str | None = None) -> tuple[Snapshot, Any, Any]:
    """A snapshot (a new one when no id is given) and its (unpaired, pairs) rows."""
    with FeedbackStore(settings.store_path) as store:
        snapshot = store.get_snapshot(snapshot_id) if snapshot_id else store.snapshot()
        unpaired, pairs = store.read_snapshot(snapshot)
    return snapshot, unpaired, pairs


def _load_split(settings: Settings, snapshot_id: str, *, train: bool = True, holdout: bool = True) -> Split:
    """The snapshot's train/holdout split, applied in DuckDB with training.max_train_examples: only the
    capped training rows and the held-out rows are fetched (a side not asked for stays empty)."""
    from alignloop.datasets import Split

    with FeedbackStore(settings.store_path) as store:
        tables = store.read_split(store.get_snapshot(snapshot_id), settings.evaluation.holdout_fraction,
                                  settings.training.max_train_examples, train=train, holdout=holdout)
    return Split.from_tables(tables)


def plan_tokenizer(settings: Settings) -> tuple[Any, str]:
    """The base model's tokenizer, to count lengths as training will; or None and why it could not be
    loaded (the plan then approximates lengths from characters and says so)."""
    from alignloop.models import load_base_tokenizer

    try:
        tokenizer = load_base_tokenizer(settings.base_model, settings.model_cache_dir)
    except (ConfigError, OSError, ValueError, ImportError) as e:
        return None, f"the base model's tokenizer could not be loaded ({e})"
    if not getattr(tokenizer, "chat_template", None):
        return None, "the base model's tokenizer has no chat template"
    return tokenizer, ""


def plan(settings: Settings) -> PlannedRun:
    """Snapshot the store, measure its shape, choose the method; write plan.json in a new run folder."""
    tokenizer, why_not = plan_tokenizer(settings)
    # Measured inside the store's DuckDB: the snapshot's rows never become Arrow tables or Python objects.
    with FeedbackStore(settings.store_path) as store:
        snapshot = store.snapshot()
        if snapshot.n_pairs + snapshot.n_unpaired == 0:
            log.warning("the feedback store %s is empty; run `alignloop ingest` first", settings.store_path)
        shape = store.measure(snapshot, settings.evaluation.holdout_fraction, memory_limit=settings.ingest.memory_limit,
                              max_length=settings.training.max_length,
                              max_length_cap=settings.training.max_length_cap, tokenizer=tokenizer,
                              approximate_because=why_not)
    step_times = read_step_times(training_cache(settings))
    the_plan = choose_method(shape, settings.training, settings.planning, step_times=step_times)
    if not the_plan.estimate.get("measured", True) and settings.planning.time_steps:
        timed = _time_steps(settings, the_plan, snapshot)
        if timed is not None:  # planned again at the measured pace: the budget may bound the steps differently
            write_step_time(training_cache(settings), timed)
            the_plan = choose_method(shape, settings.training, settings.planning,
                                     step_times={**step_times, timed.method: timed})
    return new_run(settings.runs_dir, snapshot, the_plan)


def _sample_training_rows(settings: Settings, snapshot: Snapshot, rows: int, seed: int):
    """A seeded sample of the snapshot's training side, drawn in DuckDB (the plan never fetches the whole split)
    from the rows training reads (the newest training.max_train_examples): `rows` pairs, and thumbs up and down
    in equal numbers (KTO weighs the two; a sample of one kind is refused)."""
    from alignloop.datasets import Split

    side = dict(holdout=False, holdout_fraction=settings.evaluation.holdout_fraction, per_group=rows, seed=seed,
                cap=settings.training.max_train_examples)
    with FeedbackStore(settings.store_path) as store:
        thumbs = store.sample_side(snapshot, "unpaired", by_label=True, **side).to_pylist()
        pairs = store.sample_side(snapshot, "pairs", **side).to_pylist()
    each = -(-rows // max(len({r["label"] for r in thumbs}), 1))   # rows split evenly over the labels there are
    kept: dict[Any, list] = {}
    for r in thumbs:
        if len(group := kept.setdefault(r["label"], [])) < each:
            group.append(r)
    return Split([r for group in kept.values() for r in group], pairs, [], [])


def _time_steps(settings: Settings, the_plan: Plan, snapshot: Snapshot):
    """Train planning.time_steps steps of `the_plan` on a sample of the snapshot's training rows (no caches,
    nothing kept) and return their StepTime; None, said in the log, where that cannot be done here."""
    import tempfile

    from alignloop.training import train_candidate
    from alignloop.training.common import progress_log

    steps = settings.planning.time_steps
    hp = the_plan.hyperparameters
    online = METHODS[the_plan.method].online
    if online or settings.training.processes > 1:
        log.info("plan: the wall time is not timed before planning (planning.time_steps times one training process "
                 "of an offline method, not %s); it assumes planning.seconds_per_step",
                 f"{the_plan.method}, which trains on answers it generates" if online
                 else f"{settings.training.processes} processes")
        return None
    rows = steps * hp["per_device_batch_size"] * hp["gradient_accumulation_steps"]
    sample = _sample_training_rows(settings, snapshot, rows, seed=hp.get("seed", 0))
    plan = Plan(the_plan.method, {**hp, "max_steps": steps, "max_length_cap": settings.training.max_length_cap},
                the_plan.reasons, the_plan.shape, the_plan.estimate)
    options = replace(run_options(settings), checkpoint_every=0, log_every=0, resume=False, cache_dir=None)
    # On the training progress log, so a terminal shows it as a stage line (alignloop.cli.main._ProgressLines).
    progress_log.info("timing the plan: %d %s steps on a sample of %d training rows, for the run's expected wall "
                      "time (planning.time_steps; 0 skips this)", steps, the_plan.method, rows)
    was = progress_log.disabled
    progress_log.disabled = True   # the sample's own progress lines would read as the run's training
    try:
        with tempfile.TemporaryDirectory(prefix="alignloop-time-steps-") as tmp:
            # A progress function, even one that shows nothing, keeps transformers from printing each step's
            # metrics to stdout (where `alignloop plan --json` writes its plan) and from drawing a bar.
            result = train_candidate(plan, sample, base_model_dir(settings), Path(tmp), device=settings.training.device,
                                     options=options, progress=lambda step, total, logs: None)
    except (AlignloopError, RuntimeError, ValueError) as e:
        log.warning("plan: the timed steps failed (%s); the plan assumes planning.seconds_per_step %g",
                    str(e).splitlines()[0] if str(e) else type(e).__name__, settings.planning.seconds_per_step)
        return None
    finally:
        progress_log.disabled = was
    timed = timed_before_plan(result, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    if timed is not None:
        progress_log.info("timing the plan: %s", timed.describe())
    return timed


# ---------------------------------------------------------------------------------------------- train
def base_model_dir(settings: Settings) -> Path:
    from alignloop.models import resolve_base_model

    return resolve_base_model(settings.base_model, settings.model_cache_dir)


def training_cache(settings: Settings) -> Path:
    """Tokenised rows, reference log-probs and the last runs' measured step times (alignloop.steptime)."""
    return settings.workdir / ".cache" / "training"


def run_options(settings: Settings):
    """How training runs (device, checkpoints, progress lines, caches), from the settings and the launcher."""
    from alignloop.training import RunOptions

    t = settings.training
    return RunOptions(device=t.device, checkpoint_every=t.checkpoint_every, log_every=t.log_every, resume=t.resume,
                      cache_dir=training_cache(settings), world_size=int(os.environ.get("WORLD_SIZE", "1")),
                      precision=t.precision)


def precisions(settings: Settings) -> dict[str, str]:
    """training.precision and evaluation.precision resolved for the device this run trains and evaluates on.
    Called before planning, so a precision this machine cannot compute is refused in one line before any time
    is spent, not after an hour of training (training and evaluation resolve them again on their own device)."""
    from alignloop.models import inference_precision, pick_device, training_precision

    device = pick_device(settings.training.device)
    return {"training": training_precision(settings.training.precision, device),
            "evaluation": inference_precision(settings.evaluation.precision, device)}


def train(settings: Settings, planned: PlannedRun, progress=None) -> dict[str, Any]:
    """Train the candidate the plan describes; write train.json beside it (what was truncated included)."""
    from alignloop.training import train_candidate

    if planned.plan.method == "skip":
        raise DataError("the plan is to skip training: " + planned.plan.reasons[-1])
    shared = planned.run_dir / TRAIN_ROWS_FILE
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and shared.exists():
        split = _read_training_rows(shared)  # several processes: the launcher read the store once for all
    else:
        split = _load_split(settings, planned.snapshot.snapshot_id)
    plan = planned.plan
    if "max_length_cap" not in plan.hyperparameters:
        plan = Plan(plan.method, {**plan.hyperparameters, "max_length_cap": settings.training.max_length_cap},
                    plan.reasons, plan.shape, plan.estimate)
    result = train_candidate(plan, split, base_model_dir(settings), planned.run_dir,
                             device=settings.training.device, progress=progress, options=run_options(settings))
    summary = {**asdict(result), "model_dir": str(result.model_dir), "final_loss": result.final_loss}
    if os.environ.get("RANK", "0") == "0":  # under `accelerate launch`, one process writes
        write_json(planned.run_dir / "train.json", summary)
        pace = measured(result, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), plan.estimate.get("tokens_per_step"))
        if pace is not None:  # the next plan states its wall time from this run's
            write_step_time(training_cache(settings), pace)
    for note in result.notes:
        log.info("train: %s", note)
    return summary


def train_launched(settings: Settings, planned: PlannedRun, config_file: Path | None, processes: int,
                   accelerate_config: str | None = None) -> dict[str, Any]:
    """Train with `accelerate launch` on `processes` processes reading `config_file`; returns train.json."""
    import time

    from alignloop.training.launch import launch_accelerate

    if config_file is None:
        raise ConfigError("training.processes: above 1 the run must start from a config file (alignloop run "
                          "--config, or the deployment's config_path); set training.processes: 1 to train in-process")
    write_training_rows(settings, planned)
    started = time.time()
    code = launch_accelerate(Path(config_file), planned.run_id, processes, accelerate_config)
    trained = planned.run_dir / "train.json"
    if not trained.exists() or trained.stat().st_mtime < started:
        raise TerminalError(f"the {processes} training processes exited with status {code} before writing {trained}; "
                            "see their lines above")
    if code:
        log.warning("the launcher exited with status %s after training finished and wrote its outputs", code)
    return read_json(trained)


TRAIN_ROWS_FILE = "train_rows.json"


def write_training_rows(settings: Settings, planned: PlannedRun) -> Path:
    """The training split as a file in the run folder, for launched processes that must not all open the
    store at once (DuckDB lets one process write it)."""
    split = _load_split(settings, planned.snapshot.snapshot_id, holdout=False)
    keep = ("prompt", "chosen", "rejected", "completion", "label")
    rows = {"unpaired": [{k: r[k] for k in keep if k in r} for r in split.train_unpaired],
            "pairs": [{k: r[k] for k in keep if k in r} for r in split.train_pairs]}
    path = planned.run_dir / TRAIN_ROWS_FILE
    write_json(path, rows)
    return path


def _read_training_rows(path: Path) -> Split:
    rows = json.loads(path.read_text())
    from alignloop.datasets import Split

    return Split(rows["unpaired"], rows["pairs"], [], [])


def trained_max_length(planned: PlannedRun) -> int | None:
    """The max_length training used (train.json), so evaluation fits rows to the same length."""
    path = planned.run_dir / "train.json"
    if not path.exists():
        return None
    return json.loads(path.read_text()).get("max_length")


# ---------------------------------------------------------------------------------------------- evaluate
def evaluate(settings: Settings, planned: PlannedRun, on_progress=None, *, champion_dir: Path | None = None,
             champion_version: str | None = None) -> EvalReport:
    """Score reference, candidate and (when there is one) the champion on the frozen held-out set, run
    the generation checks and guards; write eval_report.json and per_pair_scores.jsonl.

    The champion is fetched from the registry unless champion_dir is given (with its version label).
    """
    import time

    from alignloop.datasets import eval_sample_share, holdout_eval_pairs, majority_pairs
    from alignloop.evaluation.candidate import EvalOptions, evaluate_candidate
    from alignloop.evaluation.guards import capability_text
    from alignloop.models import pick_device

    started = time.perf_counter()
    ev = settings.evaluation
    # The training side too when a judge is fitted: it must be shown independent of the candidate's training rows.
    judging = bool(ev.generation_prompts) and ev.judge.kind != "none"
    fitted_here = ev.judge.kind in ("probe", "reward_model")
    split = _load_split(settings, planned.snapshot.snapshot_id, train=judging and fitted_here)
    pairs = holdout_eval_pairs(split, ev.max_examples)
    if not pairs:
        raise DataError(
            "no held-out pairs to evaluate on: the holdout split has no comparisons and no prompt with both "
            "an up- and a down-rated answer; raise evaluation.holdout_fraction or collect more feedback"
        )
    candidate_dir = planned.run_dir / "candidate"
    if not candidate_dir.exists():
        raise TerminalError(f"{candidate_dir} is missing: run `alignloop train` first")
    if champion_dir is None:
        champion_dir, champion_version = _fetch_champion(settings)
    base_dir = base_model_dir(settings)
    device = pick_device(settings.training.device)
    max_length = (ev.max_length or trained_max_length(planned) or settings.training.max_length
                  or settings.training.max_length_cap)
    all_pairs = majority_pairs(split.holdout_pairs, split.holdout_unpaired)
    fit_started = time.perf_counter()
    judge = _judge(settings, planned, split, all_pairs, base_dir, device, max_length) if judging else None
    judge_fit_s = time.perf_counter() - fit_started
    options = EvalOptions(
        batch_size=ev.batch_size, max_length=max_length, bootstrap_samples=ev.bootstrap_samples, seed=ev.seed,
        generation_prompts=ev.generation_prompts, max_new_tokens=ev.max_new_tokens, kl_samples=ev.kl_samples,
        ppl_text=capability_text(ev.ppl_text), cache_dir=settings.eval_cache_dir,
        judge_min_accuracy=ev.judge.min_accuracy, judge_accuracy_pairs=ev.judge.accuracy_pairs,
        precision=ev.precision,
    )
    report = evaluate_candidate(
        candidate_dir, base_dir, pairs, beta=float(planned.plan.hyperparameters["beta"]), options=options,
        device=device, champion_dir=champion_dir, champion_version=champion_version, judge=judge,
        eval_sample_share=eval_sample_share(all_pairs, ev.max_examples), on_progress=on_progress,
    )
    from dataclasses import replace

    parts = {**report.seconds_parts, "judge": report.seconds_parts.get("judge", 0.0) + judge_fit_s}
    report = replace(report, seconds=time.perf_counter() - started, seconds_parts=parts)  # judge fitting included
    report.write(planned.run_dir)
    return report


def _judge(settings: Settings, planned: PlannedRun, split: Split, held_out: list, base_dir: Path, device: str,
           max_length: int):
    """The judge of the models' answers, never fitted on the candidate's training prompts: by default
    cross-fitted on the held-out pairs (cached per recipe), never the run's own RLHF reward model."""
    from alignloop.evaluation.judge import build_judge
    from alignloop.schema import prompt_key

    ev = settings.evaluation
    trained_on = frozenset(prompt_key(r["prompt"]) for r in [*split.train_pairs, *split.train_unpaired])
    return build_judge(ev.judge, held_out, base_dir, settings.eval_cache_dir / "judge", device=device,
                       max_length=max_length, batch_size=ev.batch_size, seed=ev.seed,
                       training_prompt_keys=trained_on, own_reward_model=planned.run_dir / "reward_model")


def _fetch_champion(settings: Settings) -> tuple[Path | None, str | None]:
    """The champion's local model folder and version, or (None, None) when there is no champion yet."""
    from alignloop.registry import fetch_version_model, find_version

    version = find_version(settings.tracking_uri, settings.model_name, "champion")
    if version is None:
        return None, None
    folder = fetch_version_model(settings.tracking_uri, settings.model_name, version.version,
                                 cache_dir=settings.workdir / ".cache" / "versions")
    if folder is None:
        log.warning("champion version %s has no loadable model; evaluating without it", version.version)
        return None, None
    return Path(folder), str(version.version)


# ---------------------------------------------------------------------------------------------- register
def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def already_registered(settings: Settings, planned: PlannedRun) -> int | None:
    """The complete version already trained from this snapshot with these settings, if any: retraining
    it would only spend compute on a copy. A half-registered version (an interrupted run) does not count."""
    from alignloop.registry import describe

    for version in describe(settings.tracking_uri, settings.model_name):
        tags = version["tags"]
        if (version["complete"] and tags.get("alignloop.snapshot_id") == planned.snapshot.snapshot_id
                and tags.get("alignloop.config_hash") == settings.config_hash()):
            return int(version["version"])
    return None


def _weights_to_log(settings: Settings, trained: dict[str, Any], run_dir: Path) -> tuple[Path, dict[str, Any], dict]:
    """The folder to log, its model_info and extra artifacts: by default a LoRA adapter is merged into
    its base, so the version loads on any machine without the base model or peft."""
    from alignloop.models import describe_base_model
    from alignloop.registry.fetch import merge_adapter

    base_dir = base_model_dir(settings)
    info = {"kind": trained["kind"], "base_model": describe_base_model(settings.base_model),
            "base_model_path": str(base_dir), "method": trained["method"], "weights": "full"}
    model_dir = Path(trained["model_dir"])
    if trained["kind"] != "lora":
        return model_dir, info, {}
    if settings.mlflow.log_weights == "adapter_with_base":
        return model_dir, {**info, "weights": "adapter_with_base"}, {"base_model": base_dir}
    merged = merge_adapter(model_dir, base_dir, run_dir / "merged")
    return merged, {**info, "kind": "full", "weights": "merged", "merged_from": "lora"}, {}


def register(settings: Settings, planned: PlannedRun, *, allow_same_snapshot: bool = False):
    """Log the run to MLflow and register the candidate as a new version (alias newest, and challenger
    when it passed the gate), carrying the gate's verdict and the settings that decided it; promote it
    too when promotion.auto_promote is on and it passed.

    Registering one run twice returns its version; unless allow_same_snapshot, so does registering
    another run of the same snapshot and settings (two runs at once). Writes registered.json.
    """
    from alignloop.gate import champion_of, decide, input_from_report, registry_check
    from alignloop.registry import CHAMPION, describe, promote, target_lock
    from alignloop.report import write_review_page

    trained = read_json(planned.run_dir / "train.json")
    report = read_json(planned.run_dir / "eval_report.json")
    with FeedbackStore(settings.store_path) as store:
        cursors = store.source_cursors()
    uri, target = settings.tracking_uri, settings.model_name
    with target_lock(uri, target, wait_s=settings.promotion.lock_wait_s):
        champion = next((v for v in describe(uri, target) if CHAMPION in v["aliases"]), None)
        verdict = decide(input_from_report(report, champion_of(champion)), settings.promotion)
        write_json(planned.run_dir / "gate.json", verdict.to_dict())
        weights = _weights_to_log(settings, trained, planned.run_dir)
        against = report.get("champion_version")
        compared = champion if champion and against not in (None, "") and int(against) == champion["version"] else None
        review = write_review_page(planned.run_dir, target=target, champion=compared, sources=cursors)
        version = _log_version(settings, planned, trained, report, verdict, cursors, weights, review,
                               allow_same_snapshot)
        promoted = False
        if settings.promotion.auto_promote and verdict.passed and not version.reused:
            version = promote(uri, target, version.version, check=registry_check(settings.promotion),
                              via="auto_promote")
            promoted = True
    write_json(planned.run_dir / "registered.json",
                {**asdict(version), "gate": verdict.to_dict(), "auto_promoted": promoted, "review_page": str(review)})
    return version


def _log_version(settings: Settings, planned: PlannedRun, trained: dict[str, Any], report: dict[str, Any], verdict,
                 cursors: dict[str, Any], weights: tuple[Path, dict[str, Any], dict], review: Path,
                 allow_same_snapshot: bool):
    """Log the run (params, metrics, training curve, artifacts, weights) to MLflow and register it as a version
    with its lineage tags; a run registered before (or, unless allow_same_snapshot, the same snapshot and
    config) gives back its version instead."""
    from alignloop.registry import log_and_register

    model_dir, model_info, extra = weights
    plan_d = planned.plan.to_dict()
    params, metrics, step_metrics = _run_record(settings, planned, trained, report)
    same_as = [{"run_folder": planned.run_id}]
    if not allow_same_snapshot:
        same_as.append({"snapshot_id": planned.snapshot.snapshot_id, "config_hash": settings.config_hash()})
    return log_and_register(
        tracking_uri=settings.tracking_uri, experiment=settings.experiment_name, target=settings.model_name,
        run_name=planned.run_id, params=params, metrics=metrics, step_metrics=step_metrics,
        json_artifacts={"plan": plan_d, "shape": plan_d["shape"], "eval_report": report, "train": trained,
                        "gate": verdict.to_dict()},
        files={"review.html": review, **{f.name: f for f in [planned.run_dir / "per_pair_scores.jsonl"] if f.is_file()}},
        model_dir=model_dir, model_info=model_info,
        extra_model_artifacts=extra, lineage=_lineage(settings, planned, cursors, report, verdict, model_info),
        challenger=verdict.passed, same_as=same_as, lock_wait_s=settings.promotion.lock_wait_s,
    )


def _run_record(settings: Settings, planned: PlannedRun, trained: dict[str, Any], report: dict[str, Any]
                ) -> tuple[dict[str, Any], dict[str, float], list[dict[str, Any]]]:
    """The MLflow run's params, metrics (evaluation and training) and per-step training metrics."""
    from alignloop.models import describe_base_model

    metrics = {**report["metrics"], "train_runtime_s": float(trained["runtime_s"]),
               "train_rows": float(trained["n_train"])}
    if trained.get("final_loss") is not None:
        metrics["train_final_loss"] = float(trained["final_loss"])
    step_metrics = [{"step": h["step"], **{f"train_{k}": v for k, v in h.items() if k not in ("step", "epoch")}}
                    for h in trained["history"] if "step" in h]
    params = {"method": planned.plan.method, "base_model": describe_base_model(settings.base_model),
              "snapshot_id": planned.snapshot.snapshot_id, "device": trained["device"],
              "train_precision": trained.get("precision", "float32"),
              "eval_precision": report.get("precision", "float32"),
              **{f"hp.{k}": v for k, v in planned.plan.hyperparameters.items()}}
    return params, metrics, step_metrics


def _lineage(settings: Settings, planned: PlannedRun, cursors: dict[str, Any], report: dict[str, Any], verdict,
             model_info: dict[str, Any]) -> dict[str, Any]:
    """The version's lineage tags: what it was trained on and how, what it was evaluated on, the gate's verdict
    and the settings that decided it."""
    from alignloop.gate import report_tags, verdict_tags
    from alignloop.models import describe_base_model

    return {
        "snapshot_id": planned.snapshot.snapshot_id,
        "method": planned.plan.method,
        "config_hash": settings.config_hash(),
        "git_sha": git_sha(),
        "cursors": json.dumps(cursors, sort_keys=True),
        "run_folder": planned.run_id,
        "base_model": describe_base_model(settings.base_model),
        "weights": model_info["weights"],
        **report_tags(report),
        **verdict_tags(verdict),
    }


# ---------------------------------------------------------------------------------------------- review
def review(settings: Settings, *, version: int | None = None, run: str | None = None) -> Path:
    """Write the review page of a registered version (its run folder is fetched from MLflow when this
    machine does not have it) or of a local run folder (default: the latest), and log it to the
    version's MLflow run when there is one. Returns the page's path."""
    from alignloop.gate import champion_of, decide, input_from_report
    from alignloop.registry import CHAMPION, describe
    from alignloop.registry.fetch import download_run_files, log_run_file
    from alignloop.report import write_review_page

    uri, target = settings.tracking_uri, settings.model_name
    rows = describe(uri, target)
    row = None
    if version is not None:
        row = next((r for r in rows if r["version"] == version), None)
        if row is None:
            raise TerminalError(f"{target!r} has no version {version}; list them with `alignloop versions`")
        folder = row["tags"].get("alignloop.run_folder") or f"version-{version}"
        run_dir = settings.runs_dir / folder
        if not (run_dir / "eval_report.json").is_file():
            names = [f"{n}.json" for n in ("snapshot", "plan", "shape", "train", "eval_report", "gate")]
            download_run_files(uri, row["run_id"], names + ["per_pair_scores.jsonl"], run_dir)
    else:
        run_dir = latest_run(settings, run).run_dir
        registered = run_dir / "registered.json"
        if registered.is_file():
            number = json.loads(registered.read_text()).get("version")
            row = next((r for r in rows if r["version"] == number), None)
    if not (run_dir / "eval_report.json").is_file():
        raise DataError(f"{run_dir} has no eval_report.json: evaluate the candidate first (alignloop evaluate)")
    report = json.loads((run_dir / "eval_report.json").read_text())
    against = report.get("champion_version")
    champion = next((r for r in rows if against not in (None, "") and r["version"] == int(against)), None)
    if not (run_dir / "gate.json").is_file():
        if row is not None and "alignloop.gate.verdict" in row["tags"]:
            gate = {"verdict": row["tags"]["alignloop.gate.verdict"],
                    "reasons": row["tags"].get("alignloop.gate.reasons", "").splitlines(),
                    "settings_hash": row["tags"].get("alignloop.gate.settings_hash")}
        else:  # not registered yet: the gate as it would decide now
            current = next((r for r in rows if CHAMPION in r["aliases"]), None)
            gate = decide(input_from_report(report, champion_of(current)), settings.promotion).to_dict()
        (run_dir / "gate.json").write_text(json.dumps(gate, indent=2) + "\n")
    sources = None
    if row is not None and row["tags"].get("alignloop.cursors"):
        sources = json.loads(row["tags"]["alignloop.cursors"])
    path = write_review_page(run_dir, target=target, champion=champion, sources=sources,
                             version=None if row is None else row["version"])
    if row is not None and row.get("run_id"):
        log_run_file(uri, row["run_id"], path)
    return path
