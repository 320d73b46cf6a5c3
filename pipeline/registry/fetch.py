"""A registered version as a plain Hugging Face folder on this machine."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
from mlflow.exceptions import MlflowException

from alignloop.errors import TerminalError
from alignloop.registry.access import (
    FETCHED_MARKER,
    _client,
    _fluent_uris,
    _mlflow_errors,
    _quiet_mlflow,
    _valid_name,
    _version_by_alias,
)


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
    shipped = artifacts.get("base_model")
    local = info.get("base_model_path")
    base = shipped if shipped and shipped.is_dir() else (Path(local) if local and Path(local).exists() else None)
    if base is None:
        raise TerminalError(
            "this LoRA version was logged without its base model's files and its base "
            f"({info.get('base_model_path') or info.get('base_model')}) is not on this machine; "
            "train it again with `alignloop run --force`, which logs merged weights"
        )
    merge_adapter(model_dir, base, out)


def merge_adapter(adapter_dir: Path, base_dir: Path, out: Path) -> Path:
    """Write the base with the LoRA adapter merged in (plus the tokenizer) to `out`, atomically; an
    existing complete `out` is kept."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alignloop.registry.versions import files_sha256

    out = Path(out)
    source = files_sha256([adapter_dir])
    marker = out / ".alignloop-merged-from"
    if marker.is_file() and marker.read_text() == source:
        return out
    shutil.rmtree(out, ignore_errors=True)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), adapter_dir).merge_and_unload()
    merged.save_pretrained(partial)
    has_tokenizer = any((adapter_dir / f).exists() for f in ("tokenizer.json", "tokenizer_config.json"))
    AutoTokenizer.from_pretrained(adapter_dir if has_tokenizer else base_dir).save_pretrained(partial)
    (partial / ".alignloop-merged-from").write_text(source)
    partial.rename(out)
    return out



def download_run_files(tracking_uri: str, run_id: str, names: list[str], dst: Path) -> list[Path]:
    """Copy the named top-level artifacts of a run into dst (those that exist); return what was copied."""
    dst.mkdir(parents=True, exist_ok=True)
    with _mlflow_errors(tracking_uri, f"downloading the files of run {run_id}"), _quiet_mlflow():
        client = _client(tracking_uri)
        present = {Path(f.path).name for f in client.list_artifacts(run_id)}
        return [Path(client.download_artifacts(run_id, name, str(dst))) for name in names if name in present]


def log_run_file(tracking_uri: str, run_id: str, path: Path) -> None:
    """Add (or replace) one file among a run's artifacts."""
    with _mlflow_errors(tracking_uri, f"logging {Path(path).name} to run {run_id}"), _quiet_mlflow():
        _client(tracking_uri).log_artifact(run_id, str(path))
