"""How alignloop talks to MLflow: clients, names, secret-free errors, quiet output, and the small
lookups (alias, number) every registry operation shares.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH

from alignloop.errors import AlignloopError, TerminalError, TransientError
from alignloop.registry.filelock import exclusive, sqlite_db_path
from alignloop.registry.quiet import _quiet_mlflow  # noqa: F401 - re-exported for the registry modules

# challenger: the newest version that passed the gate and is not yet champion; newest: the newest
# complete version, whatever its verdict (a failing version never takes challenger from a passing one).
CHALLENGER = "challenger"
NEWEST = "newest"
CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous_champion"
TAG_PREFIX = "alignloop."
MODEL_INFO_FILE = "alignloop_model.json"
# Written last into a fetched version folder: a folder without it is an interrupted download.
FETCHED_MARKER = ".alignloop-fetched.json"
# Set last, after the run finished and the alias moved: a version without it was left half-registered
# by an interrupted run and counts for nothing (not "already registered", never promoted).
COMPLETE_TAG = f"{TAG_PREFIX}complete"
ABANDONED_TAG = f"{TAG_PREFIX}abandoned"
VERDICT_TAG = f"{TAG_PREFIX}gate.verdict"
REASONS_TAG = f"{TAG_PREFIX}gate.reasons"
# How the served model generates. Logged as the pyfunc model_config, so
# load_model(uri, model_config={"generation": {...}}) can override it; MLflow also records it as run
# params "generation/<key>", which the slash keeps apart from the caller's dotted params.
GENERATION_DEFAULTS = {"max_new_tokens": 128, "temperature": 0.0, "device": "auto"}

# Matched against every dotted part of a flattened key: a secret nested under a harmless-looking name
# ("options.credentials.user") is still dropped. "token"/"key" only at the end of a part, so counts
# such as max_new_tokens or tokenizer settings survive while api_key / hf_token do not.
_SECRET_KEY = re.compile(r"password|passwd|secret|credential|(token|key)$", re.IGNORECASE)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s]*@")
_SECRET_QUERY = re.compile(r"(?P<k>password|passwd|pwd|token|secret|api_key|apikey)=[^&\s]+", re.IGNORECASE)
_INVALID_NAME_CHARS = re.compile(r"[^\w./\- ]")
_ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
# Error codes and message fragments that mean "try again later": a locked sqlite file, a server that is
# restarting or unreachable, rate limits.
_TRANSIENT_CODES = {
    "TEMPORARILY_UNAVAILABLE",
    "REQUEST_LIMIT_EXCEEDED",
    "DEADLINE_EXCEEDED",
    "ABORTED",
    "SERVICE_UNDER_MAINTENANCE",
}
_TRANSIENT_TEXT = re.compile(
    r"database is locked|database is busy|deadlock|connection (refused|reset|aborted)|"
    r"max retries exceeded|failed to establish a new connection|timed? ?out|temporarily unavailable|"
    r"too many requests|\b(429|502|503|504)\b|server closed the connection|could not connect",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class RegisteredVersion:
    """One version of the target in the registry, as the gate and the server see it."""

    name: str
    version: int
    run_id: str
    aliases: tuple[str, ...]
    model_uri: str
    reused: bool = False      # an equivalent complete version existed; nothing new was registered



# --------------------------------------------------------------------------------------------------
# Logging helpers


def _flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts become dotted keys; values become (truncated) strings; secret-looking keys vanish."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if any(_SECRET_KEY.search(part) for part in name.split(".")):
            continue
        if isinstance(value, Mapping):
            flat.update(_flatten_params(value, prefix=f"{name}."))
            continue
        if isinstance(value, (list, tuple)):
            text = json.dumps(value, default=str)
        else:
            text = str(value)
        flat[_valid_name(name)] = redact(text)[:MAX_PARAM_VAL_LENGTH]
    return flat


def _lineage_tags(lineage: Mapping[str, Any]) -> dict[str, str]:
    tags = {}
    for key, value in lineage.items():
        name = key if key.startswith(TAG_PREFIX) else f"{TAG_PREFIX}{key}"
        tags[_valid_name(name)] = redact(str(value))[:MAX_TAG_VAL_LENGTH]
    return tags


def _valid_name(name: str) -> str:
    # MLflow rejects other characters in param/metric/tag keys; a readable near-copy beats a failed run.
    return _INVALID_NAME_CHARS.sub("_", name)[:MAX_ENTITY_KEY_LENGTH]



def _log_values(
    client: MlflowClient,
    run_id: str,
    params: dict[str, str],
    metrics: Mapping[str, float],
    step_metrics: list[Mapping[str, float]],
) -> int:
    """Params, the training curve, then the final metrics. Returns the final step.

    Final metrics are logged at the last step of the curve and one millisecond later, so the run's
    "latest" value of a key that is also on the curve is the final value the caller gave.
    """
    now = int(time.time() * 1000)
    curve: list[Metric] = []
    for point in step_metrics:
        if "step" not in point:
            raise TerminalError(f"step_metrics entry {dict(point)!r} has no 'step'; every point needs one")
        step = int(point["step"])
        for key, value in point.items():
            if key != "step" and _is_number(value):  # trainers log the odd non-numeric entry; skip it
                curve.append(Metric(_valid_name(key), float(value), now, step))
    final_step = max((m.step for m in curve), default=0)
    final = [
        Metric(_valid_name(k), float(v), now + 1, final_step) for k, v in metrics.items() if _is_number(v)
    ]
    client.log_batch(
        run_id,
        metrics=curve + final,
        params=[Param(k, v) for k, v in params.items()],
        tags=[RunTag(f"{TAG_PREFIX}final_step", str(final_step))],
    )
    return final_step


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _log_json_artifacts(client: MlflowClient, run_id: str, json_artifacts: Mapping[str, Any]) -> None:
    if not json_artifacts:
        return
    with tempfile.TemporaryDirectory(prefix="alignloop-json-") as tmp:
        for name, obj in json_artifacts.items():
            stem = name.removesuffix(".json")
            if not _ARTIFACT_NAME.match(stem):
                raise TerminalError(
                    f"json artifact name {name!r} is not a plain file name; use letters, digits, _ . -"
                )
            # default=str keeps Paths and datetimes readable instead of failing the whole run.
            text = json.dumps(obj, indent=2, ensure_ascii=False, default=str)
            (Path(tmp) / f"{stem}.json").write_text(text + "\n", encoding="utf-8")
        client.log_artifacts(run_id, tmp)



# --------------------------------------------------------------------------------------------------
# Registry helpers


_schema_ready: set[str] = set()


def _client(tracking_uri: str) -> MlflowClient:
    """A client for the store. A new sqlite file gets its schema under a file lock: two processes
    migrating one file at once fail with a multi-line SQL error."""
    db = sqlite_db_path(tracking_uri)
    if db is None or tracking_uri in _schema_ready:
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    # MlflowClient opens (and migrates) the stores as it is constructed, so that happens under the lock.
    with exclusive(db.with_name(f"{db.name}.alignloop-schema-lock"), wait_s=300.0,
                   what=f"creating the MLflow schema in {db}", busy_hint="try again when it is done"):
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        client.search_experiments(max_results=1)
        client.search_registered_models(max_results=1)
    _schema_ready.add(tracking_uri)
    return client


def _ensure_experiment(client: MlflowClient, tracking_uri: str, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(name, artifact_location=_artifact_location(tracking_uri, name))
        except MlflowException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            found = client.get_experiment_by_name(name)  # another process created it meanwhile
    if found.lifecycle_stage != "active":
        raise TerminalError(
            f"MLflow experiment {name!r} is deleted; restore it (mlflow experiments restore) "
            "or set mlflow.experiment to another name"
        )
    return found.experiment_id


def _artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Beside the database for sqlite (MLflow would use ./mlartifacts under the current directory);
    the server's own default otherwise."""
    db = sqlite_db_path(tracking_uri)
    if db is None:
        return None
    slug = re.sub(r"[^A-Za-z0-9_.\-]", "_", experiment)
    return (db.parent / "mlartifacts" / slug).as_uri()


def _registered_model(client: MlflowClient, target: str) -> RegisteredModel | None:
    try:
        return client.get_registered_model(target)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def _version_by_alias(client: MlflowClient, target: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(target, alias)
    except MlflowException as e:
        # A missing alias is INVALID_PARAMETER_VALUE in MLflow 3 (a missing model RESOURCE_DOES_NOT_EXIST);
        # an invalid alias name shares that code, so the message decides.
        if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(e):
            return None
        raise


def _version_by_number(client: MlflowClient, target: str, version: int) -> ModelVersion:
    try:
        return client.get_model_version(target, str(int(version)))
    except MlflowException as e:
        if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            raise TerminalError(
                f"{target!r} has no version {version}; list the versions with `alignloop versions`"
            ) from None
        raise


def _registered(mv: ModelVersion) -> RegisteredVersion:
    return RegisteredVersion(
        name=mv.name,
        version=int(mv.version),
        run_id=mv.run_id or "",
        aliases=tuple(sorted(mv.aliases or ())),
        model_uri=f"models:/{mv.name}/{mv.version}",
    )


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


# --------------------------------------------------------------------------------------------------
# Errors, credentials and noise


def redact(text: str) -> str:
    """`text` without user:password@ in URIs and without password=/token= query values."""
    return _SECRET_QUERY.sub(r"\g<k>=***", _USERINFO.sub(r"\g<scheme>", text))


def _is_transient(error: BaseException) -> bool:
    code = getattr(error, "error_code", None)
    if code in _TRANSIENT_CODES:
        return True
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    try:  # requests is an MLflow dependency, but keep the classification independent of it
        import requests

        if isinstance(error, (requests.ConnectionError, requests.Timeout)):
            return True
    except ImportError:
        pass
    # sqlalchemy's OperationalError is matched by name: this module need not import sqlalchemy.
    by_text = isinstance(error, (MlflowException, sqlite3.OperationalError))
    if by_text or type(error).__name__ == "OperationalError":
        return bool(_TRANSIENT_TEXT.search(str(error)))
    return False


@contextlib.contextmanager
def _mlflow_errors(tracking_uri: str, action: str) -> Iterator[None]:
    """Turn whatever MLflow raises into TransientError / TerminalError. The original is not chained
    (`from None`): its text may carry the tracking URI's password, and tracebacks get logged."""
    try:
        yield
    except AlignloopError:
        raise
    except Exception as e:  # noqa: BLE001 - every failure must leave as one of our two kinds
        where = redact(tracking_uri)
        detail = redact(f"{type(e).__name__}: {e}")
        if len(detail) > 800:
            detail = detail[:800] + " ..."
        if _is_transient(e):
            raise TransientError(
                f"MLflow at {where} is unavailable while {action} ({detail}); it is retried, "
                "or run again once the server/database answers"
            ) from None
        raise TerminalError(f"MLflow at {where} failed while {action}: {detail}") from None


@contextlib.contextmanager
def _fluent_uris(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's process-wide tracking and registry URIs at `tracking_uri`, then put back exactly
    what was there: the module globals (private, hence getattr) and the environment variables that
    MLflow mirrors them into for subprocesses."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    saved_tracking = getattr(tracking_utils, "_tracking_uri", None)
    saved_registry = getattr(registry_utils, "_registry_uri", None)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved_tracking)  # None is accepted and means "not set"
        mlflow.set_registry_uri(saved_registry)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
