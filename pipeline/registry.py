"""MLflow side of alignloop: log a training run, register its model as a new version of the target,
and move the aliases (challenger, champion, previous_champion) that the gate and the server read.
Every MLflow failure leaves this module as a TransientError or a TerminalError with a secret-free message.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import cloudpickle
import mlflow
import mlflow.artifacts
import mlflow.pyfunc
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH

from pipeline.errors import AlignloopError, TerminalError, TransientError

CHALLENGER = "challenger"
CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous_champion"
TAG_PREFIX = "alignloop."
MODEL_INFO_FILE = "alignloop_model.json"
# Written last into a fetched version folder: a folder without it is an interrupted download.
FETCHED_MARKER = ".alignloop-fetched.json"
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


class TextGenerator(mlflow.pyfunc.PythonModel):
    """The served model: a Hugging Face causal LM (full weights or LoRA on its base) that completes prompts.

    Pickled by value when logged (see `_pickled_by_value`), so a machine that loads it needs the
    model's pip requirements, not alignloop. Generation settings come from model_config["generation"]
    (max_new_tokens, temperature, device) and can be overridden at load time.
    """

    def load_context(self, context):
        import json
        from pathlib import Path

        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model_dir = Path(context.artifacts["model"])
        info = json.loads(Path(context.artifacts["alignloop_model"]).read_text())
        generation = dict((context.model_config or {}).get("generation") or {})
        self.max_new_tokens = int(generation.get("max_new_tokens", 128))
        self.temperature = float(generation.get("temperature", 0.0))
        device = generation.get("device") or "auto"
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"

        def from_pretrained(loader, where):  # a GGUF base is a file, not a folder
            where = Path(where)
            if where.is_file() and where.suffix == ".gguf":
                return loader.from_pretrained(where.parent, gguf_file=where.name)
            return loader.from_pretrained(where)

        if info.get("kind") == "lora":
            from peft import PeftModel

            adapter = json.loads((model_dir / "adapter_config.json").read_text())
            local = info.get("base_model_path")
            base = local if local and Path(local).exists() else (
                info.get("base_model") or adapter.get("base_model_name_or_path")
            )
            if not base:
                raise ValueError("LoRA adapter without a base model: set base_model or base_model_path")
            # Merged weights generate faster and no longer need peft at predict time.
            model = PeftModel.from_pretrained(from_pretrained(AutoModelForCausalLM, base), model_dir)
            model = model.merge_and_unload()
        else:
            base = model_dir
            model = from_pretrained(AutoModelForCausalLM, model_dir)
        has_tokenizer = any((model_dir / f).exists() for f in ("tokenizer.json", "tokenizer_config.json"))
        self.tokenizer = from_pretrained(AutoTokenizer, model_dir if has_tokenizer else base)
        self.model = model.to(device).eval()
        self.device = device

    def predict(self, context, model_input: list[str], params: dict | None = None) -> list[str]:
        import torch

        params = params or {}
        max_new_tokens = int(params.get("max_new_tokens", self.max_new_tokens))
        temperature = float(params.get("temperature", self.temperature))
        tok = self.tokenizer
        answers = []
        for prompt in model_input:
            text = prompt
            if getattr(tok, "chat_template", None):
                text = tok.apply_chat_template(
                    [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
                )
            ids = tok(text, return_tensors="pt").to(self.device)
            with torch.no_grad():
                out = self.model.generate(
                    **ids,
                    max_new_tokens=max_new_tokens,
                    do_sample=temperature > 0,
                    **({"temperature": temperature} if temperature > 0 else {}),
                    pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                )
            answers.append(tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
        return answers


# --------------------------------------------------------------------------------------------------
# Public API


def log_and_register(
    *,
    tracking_uri: str,
    experiment: str,
    target: str,
    run_name: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    step_metrics: list[dict[str, float]],
    json_artifacts: dict[str, Any],
    model_dir: Path,
    model_info: dict[str, Any],
    lineage: dict[str, str],
    alias: str = CHALLENGER,
) -> RegisteredVersion:
    """Log one run (params, metrics, curve, JSON artifacts, model) and register it as a new version of
    `target` carrying `alias` and the lineage tags. The run ends FAILED if any step fails."""
    model_dir = Path(model_dir)
    info = _checked_model_info(model_dir, model_info)
    tags = _lineage_tags(lineage)
    flat_params = _flatten_params(params)
    with _mlflow_errors(tracking_uri, f"logging and registering a version of {target!r}"), _quiet_mlflow():
        client = _client(tracking_uri)
        experiment_id = _ensure_experiment(client, tracking_uri, experiment)
        # The fluent API is the only way to attach the logged model to the run, so the global URIs are
        # pointed at this store for the duration and restored afterwards.
        with _fluent_uris(tracking_uri):
            nested = mlflow.active_run() is not None  # a caller's own run becomes the parent
            run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags, nested=nested)
            run_id = run.info.run_id
            status = "FAILED"
            try:
                final_step = _log_values(client, run_id, flat_params, metrics, step_metrics)
                _log_json_artifacts(client, run_id, json_artifacts)
                logged = _log_model(model_dir, info, tags, final_step)
                version = mlflow.register_model(logged.model_uri, target, tags=tags)
                client.set_registered_model_alias(target, alias, version.version)
                status = "FINISHED"
            finally:
                mlflow.end_run(status)
        return _registered(client.get_model_version(target, version.version))


def promote(tracking_uri: str, target: str, version: int | None = None) -> RegisteredVersion:
    """Make `version` (default: the challenger) the champion; the old champion becomes previous_champion.

    Aliases move in an order that is safe to retry: previous_champion, then champion, then the
    challenger alias is dropped if it named the promoted version.
    """
    with _mlflow_errors(tracking_uri, f"promoting a version of {target!r}"), _quiet_mlflow():
        client = _client(tracking_uri)
        if version is None:
            new = _version_by_alias(client, target, CHALLENGER)
            if new is None:
                raise TerminalError(
                    f"{target!r} has no {CHALLENGER!r} version to promote; register one first "
                    "(alignloop retrain) or pass the version number to promote"
                )
        else:
            new = _version_by_number(client, target, version)
        old = _version_by_alias(client, target, CHAMPION)
        if old is not None and old.version != new.version:
            client.set_registered_model_alias(target, PREVIOUS_CHAMPION, old.version)
        client.set_registered_model_alias(target, CHAMPION, new.version)
        if CHALLENGER in new.aliases:
            client.delete_registered_model_alias(target, CHALLENGER)
        return _registered(client.get_model_version(target, new.version))


def rollback(tracking_uri: str, target: str) -> RegisteredVersion:
    """Give champion back to previous_champion. previous_champion is consumed, so rolling back twice
    is an error rather than a silent flip back to the version that was just rolled back."""
    with _mlflow_errors(tracking_uri, f"rolling back {target!r}"), _quiet_mlflow():
        client = _client(tracking_uri)
        previous = _version_by_alias(client, target, PREVIOUS_CHAMPION)
        if previous is None:
            raise TerminalError(
                f"{target!r}: no {PREVIOUS_CHAMPION} to roll back to; promote a version by number instead "
                "(alignloop promote --version N)"
            )
        client.set_registered_model_alias(target, CHAMPION, previous.version)
        client.delete_registered_model_alias(target, PREVIOUS_CHAMPION)
        return _registered(client.get_model_version(target, previous.version))


def describe(tracking_uri: str, target: str) -> list[dict[str, Any]]:
    """Every version of `target`, oldest first: aliases, lineage tags, and its run's final metrics."""
    with _mlflow_errors(tracking_uri, f"describing {target!r}"), _quiet_mlflow():
        client = _client(tracking_uri)
        model = _registered_model(client, target)
        if model is None:
            return []
        # Searched versions come back without their aliases; the registered model maps alias -> version.
        aliases_of: dict[str, list[str]] = {}
        for alias, number in (model.aliases or {}).items():
            aliases_of.setdefault(str(number), []).append(alias)
        versions: list[ModelVersion] = []
        token = None
        while True:
            page = client.search_model_versions(
                f"name = '{_quote(target)}'", max_results=1000, page_token=token
            )
            versions.extend(page)
            token = page.token
            if not token:
                break
        rows = []
        for mv in sorted(versions, key=lambda v: int(v.version)):
            metrics: dict[str, float] = {}
            if mv.run_id:
                with contextlib.suppress(MlflowException):  # the run may have been deleted since
                    metrics = dict(client.get_run(mv.run_id).data.metrics)
            rows.append({
                "version": int(mv.version),
                "aliases": sorted(aliases_of.get(str(mv.version), [])),
                "run_id": mv.run_id,
                "tags": dict(mv.tags or {}),
                "metrics": metrics,
                "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=UTC).isoformat(
                    timespec="seconds"
                ),
                "model_uri": f"models:/{target}/{mv.version}",
            })
        return rows


def find_version(tracking_uri: str, target: str, alias: str) -> RegisteredVersion | None:
    """The version that carries `alias`, or None when the alias (or the model) does not exist."""
    with _mlflow_errors(tracking_uri, f"looking up {target!r}@{alias}"), _quiet_mlflow():
        mv = _version_by_alias(_client(tracking_uri), target, alias)
        return None if mv is None else _registered(mv)


def fetch_version_model(tracking_uri: str, target: str, ref: str | int, cache_dir: Path | None = None) -> Path | None:
    """A local folder holding version `ref` of `target` as plain Hugging Face files (merged weights and
    tokenizer) that AutoModelForCausalLM.from_pretrained loads; None when there is no such version.

    `ref` is an alias ("champion", "challenger") or a version number. The folder is kept under
    `cache_dir` (default: <tmp>/alignloop-versions) keyed by store, target and version, and filled
    atomically, so a second call returns at once and a killed download is never mistaken for a model.
    A LoRA version (registered before merged weights were the default) is merged onto its base here.
    """
    with _mlflow_errors(tracking_uri, f"fetching {target!r}@{ref}"), _quiet_mlflow():
        client = _client(tracking_uri)
        if isinstance(ref, int) or str(ref).isdigit():
            try:
                mv = client.get_model_version(target, str(int(ref)))
            except MlflowException as e:
                if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
                    return None
                raise
        else:
            mv = _version_by_alias(client, target, str(ref))
        if mv is None:
            return None
        root = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "alignloop-versions"
        store_key = hashlib.sha256(tracking_uri.encode()).hexdigest()[:12]
        folder = root / store_key / _valid_name(target) / str(mv.version)
        marker = folder / FETCHED_MARKER
        if marker.is_file() and json.loads(marker.read_text()).get("run_id") == mv.run_id:
            return folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{mv.version}-partial-", dir=folder.parent))
        try:
            with _fluent_uris(tracking_uri):
                local = Path(mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{target}/{mv.version}", dst_path=str(partial / "download")))
            weights = partial / "weights"
            _materialize_weights(local, weights)
            (weights / FETCHED_MARKER).write_text(json.dumps({"run_id": mv.run_id, "version": int(mv.version)}))
            if folder.exists():
                shutil.rmtree(folder)
            weights.rename(folder)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return folder


def _pyfunc_artifacts(pyfunc_dir: Path) -> dict[str, Path]:
    """Artifact name -> local path, as the pyfunc MLmodel file records them."""
    import yaml

    mlmodel = yaml.safe_load((pyfunc_dir / "MLmodel").read_text())
    recorded = (mlmodel.get("flavors", {}).get("python_function", {}).get("artifacts")) or {}
    return {name: pyfunc_dir / entry["path"] for name, entry in recorded.items() if "path" in entry}


def _materialize_weights(pyfunc_dir: Path, out: Path) -> None:
    """From a downloaded pyfunc model, the Hugging Face folder of its weights (LoRA merged onto its base)."""
    artifacts = _pyfunc_artifacts(pyfunc_dir)
    if "model" not in artifacts:
        raise TerminalError(f"{pyfunc_dir} has no 'model' artifact; it was not logged by alignloop")
    info_file = artifacts.get("alignloop_model")
    info = json.loads(info_file.read_text()) if info_file and info_file.is_file() else {}
    model_dir = artifacts["model"]
    if info.get("kind") != "lora":
        shutil.copytree(model_dir, out)
        return
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shipped = artifacts.get("base_model")
    local = info.get("base_model_path")
    base = shipped if shipped and shipped.is_dir() else (Path(local) if local and Path(local).exists() else None)
    if base is None:
        raise TerminalError(
            "this LoRA version was logged without its base model's files and its base "
            f"({info.get('base_model_path') or info.get('base_model')}) is not on this machine; "
            "register it again with merged weights (alignloop register)"
        )
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), model_dir).merge_and_unload()
    merged.save_pretrained(out)
    has_tokenizer = any((model_dir / f).exists() for f in ("tokenizer.json", "tokenizer_config.json"))
    AutoTokenizer.from_pretrained(model_dir if has_tokenizer else base).save_pretrained(out)


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


def _checked_model_info(model_dir: Path, model_info: Mapping[str, Any]) -> dict[str, Any]:
    if not model_dir.is_dir():
        raise TerminalError(f"model folder {model_dir} does not exist; train first or pass the saved folder")
    is_adapter = (model_dir / "adapter_config.json").is_file()
    kind = model_info.get("kind") or ("lora" if is_adapter else "full")
    if kind == "lora" and not is_adapter:
        raise TerminalError(f"{model_dir}: model_info says kind=lora but adapter_config.json is missing")
    if kind == "full" and not (model_dir / "config.json").is_file():
        raise TerminalError(f"{model_dir}: model_info says kind=full but config.json is missing")
    if kind not in ("lora", "full"):
        raise TerminalError(f"model_info kind {kind!r} is not one of 'lora', 'full'")
    return {**model_info, "kind": kind}


def _log_model(model_dir: Path, info: dict[str, Any], tags: dict[str, str], step: int) -> Any:
    """Log the folder as a pyfunc model (files copied as-is). Nothing here loads the weights: no
    input_example (MLflow would call predict to validate it) and explicit requirements (MLflow would
    otherwise load the model to infer them)."""
    with tempfile.TemporaryDirectory(prefix="alignloop-model-") as tmp:
        info_file = Path(tmp) / MODEL_INFO_FILE
        info_file.write_text(json.dumps(info, indent=2, default=str) + "\n")
        with _pickled_by_value():
            return mlflow.pyfunc.log_model(
                name="model",
                python_model=TextGenerator(),
                artifacts={"model": str(model_dir.resolve()), "alignloop_model": str(info_file)},
                pip_requirements=_pip_requirements(info["kind"]),
                metadata={"alignloop": json.loads(json.dumps(info, default=str))},
                # MLflow ignores load-time model_config keys that were not logged with the model.
                model_config={"generation": dict(GENERATION_DEFAULTS)},
                tags=tags,
                step=step,
            )


_pickle_lock = threading.Lock()


@contextlib.contextmanager
def _pickled_by_value() -> Iterator[None]:
    # cloudpickle stores classes by import path by default; the serving side would then need
    # alignloop installed. By value, TextGenerator travels inside python_model.pkl. Its methods only
    # use the standard library and the libraries in the pip requirements.
    module = sys.modules[__name__]
    with _pickle_lock:
        cloudpickle.register_pickle_by_value(module)
        try:
            yield
        finally:
            cloudpickle.unregister_pickle_by_value(module)


def _pip_requirements(kind: str) -> list[str]:
    names = ["mlflow", "cloudpickle", "torch", "transformers", "accelerate"]
    if kind == "lora":
        names.append("peft")
    requirements = []
    for name in names:
        try:
            # Local labels such as +cpu are not on any index; the public release is what a server installs.
            requirements.append(f"{name}=={importlib_metadata.version(name).split('+')[0]}")
        except importlib_metadata.PackageNotFoundError:
            requirements.append(name)
    return requirements


# --------------------------------------------------------------------------------------------------
# Registry helpers


def _client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


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
    if not tracking_uri.startswith("sqlite:"):
        return None
    db = Path(unquote(urlparse(tracking_uri).path))
    if tracking_uri.startswith("sqlite:////"):  # four slashes: an absolute path
        db = Path("/" + str(db).lstrip("/"))
    else:
        db = Path(str(db).lstrip("/")).resolve()
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
                f"{target!r} has no version {version}; list the versions with `alignloop models`"
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


_CHATTER = re.compile(
    r"^(🏃 View run|🧪 View experiment|Successfully registered model|Registered model .* already exists|"
    r"Created version '\d+' of model)"
)


class _DropChatter(io.TextIOBase):
    """A stdout/stderr stand-in that drops MLflow's progress lines and forwards everything else."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if not _CHATTER.match(line.strip()):
                self._target.write(line + "\n")
        return len(text)

    def isatty(self) -> bool:
        return self._target.isatty()

    def fileno(self) -> int:
        return self._target.fileno()

    def flush(self) -> None:
        if self._pending and not _CHATTER.match(self._pending.strip()):
            self._target.write(self._pending)
        self._pending = ""
        self._target.flush()


class _DropPickleWarning(logging.Filter):
    # MLflow warns that pickled python_model objects can run code on load; the object is ours.
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Passing a Python object as `python_model`")


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """Silence what MLflow prints on success (schema migrations of a new sqlite file, progress bars,
    "View run" links, "Created version" lines). Warnings and errors still come through."""
    loggers = {name: logging.getLogger(name) for name in ("alembic", "mlflow.store.db.utils")}
    levels = {name: lg.level for name, lg in loggers.items()}
    pickle_filter = _DropPickleWarning()
    pyfunc_logger = logging.getLogger("mlflow.pyfunc")
    saved_env = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    out, err = _DropChatter(sys.stdout), _DropChatter(sys.stderr)
    try:
        for lg in loggers.values():
            lg.setLevel(logging.WARNING)
        pyfunc_logger.addFilter(pickle_filter)
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield
    finally:
        out.flush()
        err.flush()
        for name, lg in loggers.items():
            lg.setLevel(levels[name])
        pyfunc_logger.removeFilter(pickle_filter)
        if saved_env is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = saved_env


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
