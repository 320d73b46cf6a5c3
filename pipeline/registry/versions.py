"""Versions of a target: log and register one (all or nothing, one at a time), promote, roll back,
describe. A version counts only once it is complete (see COMPLETE_TAG).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pwd
from urllib.parse import urlsplit
from datetime import UTC, datetime
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from alignloop.errors import TerminalError
from alignloop.registry.access import (
    ABANDONED_TAG,
    COMPLETE_TAG,
    TAG_PREFIX,
    redact,
    MAX_TAG_VAL_LENGTH,
    CHALLENGER,
    CHAMPION,
    NEWEST,
    PREVIOUS_CHAMPION,
    RegisteredVersion,
    _client,
    _ensure_experiment,
    _flatten_params,
    _fluent_uris,
    _lineage_tags,
    _log_json_artifacts,
    _log_values,
    _mlflow_errors,
    _quiet_mlflow,
    _quote,
    _registered,
    _registered_model,
    _version_by_alias,
    _version_by_number,
)
from alignloop.registry.lock import target_lock
from alignloop.registry.served import _checked_model_info, _log_model

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# Public API

# Decides whether a candidate row may replace the champion row (both as `describe` returns them):
# returns a verdict with .passed, .verdict, .lines, and the .settings / .settings_hash that decided it.
Check = Callable[[dict[str, Any], "dict[str, Any] | None"], Any]


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
    challenger: bool,
    files: Mapping[str, Path] | None = None,
    extra_model_artifacts: Mapping[str, Path] | None = None,
    same_as: Sequence[Mapping[str, str]] = (),
    lock_wait_s: float = 600.0,
) -> RegisteredVersion:
    """Log one run (params, metrics, curve, JSON artifacts and `files`, model) and register it as a new
    version of `target` carrying the lineage tags and alias `newest`, and `challenger` only when
    `challenger` is true (it passed the gate), all or nothing, one at a time per target.

    `same_as`: tag sets that identify an equivalent version (e.g. the same run folder); when a complete
    version carries all tags of one set, it is returned (reused=True) and nothing new is logged.
    Order of steps: run logged and FINISHED, version created, alias set, COMPLETE_TAG set last. A
    version left without COMPLETE_TAG by a killed process is marked abandoned by the next registration.
    """
    model_dir = Path(model_dir)
    info = _checked_model_info(model_dir, model_info)
    extra_model_artifacts = {k: Path(v) for k, v in (extra_model_artifacts or {}).items()}
    sha = files_sha256([model_dir, *extra_model_artifacts.values()])
    tags = {**_lineage_tags(lineage), f"{TAG_PREFIX}model_sha256": sha}
    flat_params = _flatten_params(params)
    with target_lock(tracking_uri, target, wait_s=lock_wait_s), \
            _mlflow_errors(tracking_uri, f"logging and registering a version of {target!r}"), _quiet_mlflow():
        client = _client(tracking_uri)
        _abandon_incomplete(client, target)
        reused = _equivalent_version(client, target, same_as)
        if reused is not None:
            return reused
        experiment_id = _ensure_experiment(client, tracking_uri, experiment)
        # The fluent API is the only way to attach the logged model to the run, so the global URIs are
        # pointed at this store for the duration and restored afterwards.
        with _fluent_uris(tracking_uri):
            run_id = _start_run(experiment_id, run_name, tags)
            status = "FAILED"
            try:
                final_step = _log_values(client, run_id, flat_params, metrics, step_metrics)
                _log_json_artifacts(client, run_id, json_artifacts)
                for name, path in (files or {}).items():
                    client.log_artifact(run_id, str(path), artifact_path=name if Path(path).is_dir() else None)
                logged = _log_model(model_dir, info, tags, final_step, extra_model_artifacts)
                status = "FINISHED"
            finally:
                mlflow.end_run(status)
            version = mlflow.register_model(logged.model_uri, target, tags=tags)
        _complete(client, target, version.version, challenger)
        return _registered(client.get_model_version(target, version.version))


def _equivalent_version(client, target: str, same_as: Sequence[Mapping[str, str]]
                        ) -> RegisteredVersion | None:
    """A complete version carrying every tag of one of the `same_as` sets (reused=True), or None."""
    for wanted in same_as:
        wanted_tags = _lineage_tags(wanted)
        for mv in _all_versions(client, target):
            have = dict(mv.tags or {})
            if have.get(COMPLETE_TAG) == "true" and all(have.get(k) == v for k, v in wanted_tags.items()):
                return replace(_registered(client.get_model_version(target, mv.version)), reused=True)
    return None


def _start_run(experiment_id: str, run_name: str, tags: dict[str, str]) -> str:
    """Start the MLflow run (nested under a caller's own active run); its id."""
    nested = mlflow.active_run() is not None  # a caller's own run becomes the parent
    return mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags, nested=nested).info.run_id


def _complete(client, target: str, version: str, challenger: bool) -> None:
    """Point newest (and challenger, when it passed the gate) at the new version and mark it complete; a
    version that cannot be is marked abandoned."""
    try:
        client.set_registered_model_alias(target, NEWEST, version)
        if challenger:
            client.set_registered_model_alias(target, CHALLENGER, version)
        client.set_model_version_tag(target, version, COMPLETE_TAG, "true")
    except BaseException:
        with contextlib.suppress(Exception):
            client.set_model_version_tag(target, version, ABANDONED_TAG, "registration failed")
        raise


def promote(tracking_uri: str, target: str, version: int | None = None, *, check: Check,
            force_reason: str | None = None, via: str | None = None, lock_wait_s: float = 600.0) -> RegisteredVersion:
    """Make `version` (default: the challenger) the champion; the old champion becomes previous_champion.

    `check(candidate, champion)` is the gate (there is no ungated promotion): a verdict that did not pass
    refuses the promotion and moves nothing, unless `force_reason` is given; then the identity the
    registry knows (see registry_user) and the reason are recorded as tags on the promoted version, as
    are the verdict and the settings that decided it. `via` names an automatic promoter (auto_promote).
    Aliases move in an order that is safe to retry: previous_champion, then champion, then the
    challenger alias is dropped if it named the promoted version.
    """
    if not callable(check):
        raise TypeError("registry.promote needs check=, the gate (alignloop.gate.registry_check(settings)): "
                        "there is no ungated promotion; override a verdict with force_reason")
    with target_lock(tracking_uri, target, wait_s=lock_wait_s), \
            _mlflow_errors(tracking_uri, f"promoting a version of {target!r}"), _quiet_mlflow():
        client = _client(tracking_uri)
        new = _promotable(client, target, version)
        old = _version_by_alias(client, target, CHAMPION)
        if old is not None and old.version == new.version:
            return _registered(new)
        promotion_tags = _promotion_tags(client, target, new, old, check, force_reason, via,
                                         registry_user(tracking_uri))
        for key, value in promotion_tags.items():
            client.set_model_version_tag(target, new.version, key, value)
        if old is not None:
            client.set_registered_model_alias(target, PREVIOUS_CHAMPION, old.version)
        client.set_registered_model_alias(target, CHAMPION, new.version)
        if CHALLENGER in (new.aliases or ()) or _alias_points_to(client, target, CHALLENGER, new.version):
            client.delete_registered_model_alias(target, CHALLENGER)
        return _registered(client.get_model_version(target, new.version))


def _promotable(client, target: str, version: int | None) -> ModelVersion:
    """The version to promote: `version`, or the challenger (refused when a newer version was left
    half-registered); refused when its own registration is incomplete."""
    if version is None:
        new = _version_by_alias(client, target, CHALLENGER)
        if new is None:
            raise TerminalError(
                f"{target!r} has no {CHALLENGER!r} version to promote: no version registered since the last "
                "promotion passed the gate. List them with `alignloop versions`; promote one knowingly with "
                "`alignloop promote --version N` (--force --reason TEXT if it did not pass)"
            )
        newest = max(_all_versions(client, target), key=lambda v: int(v.version))
        if int(newest.version) > int(new.version) and not _is_complete(newest):
            raise TerminalError(
                f"{target!r} version {newest.version} was left half-registered by an interrupted run, so the "
                f"challenger is still the older version {new.version}; run `alignloop run` to register again, "
                f"or `alignloop promote --version {new.version}` to promote that one knowingly"
            )
    else:
        new = _version_by_number(client, target, version)
    if not _is_complete(new):
        raise TerminalError(
            f"{target!r} version {new.version} is incomplete (its registration was interrupted) and cannot be "
            "promoted; run `alignloop run` to register the candidate again"
        )
    return new


def _promotion_tags(client, target: str, new: ModelVersion, old: ModelVersion | None, check: Check,
                    force_reason: str | None, via: str | None, user: str) -> dict[str, str]:
    """Who promoted and when, the gate's verdict and the settings that decided it, and who overrode it
    and why; a verdict that did not pass refuses the promotion (nothing moved) unless `force_reason` is given."""
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    promotion_tags = {f"{TAG_PREFIX}promoted_by": user if via is None else f"{via} ({user})",
                      f"{TAG_PREFIX}promoted_at": stamp}
    verdict = check(_row(client, target, new), None if old is None else _row(client, target, old))
    promotion_tags.update(_verdict_tags(verdict))
    if verdict.passed:
        return promotion_tags
    if not force_reason:
        misses = [line for line in verdict.lines if not line.startswith(("pass", "skip"))]
        raise TerminalError(
            f"{target!r} version {new.version} is not promoted (gate verdict: {verdict.verdict}; "
            f"{' | '.join(misses)}); nothing moved. Inspect it with `alignloop versions` / `alignloop "
            "review --version N`, or override with `alignloop promote --force --reason TEXT`"
        )
    promotion_tags[f"{TAG_PREFIX}promotion.forced_by"] = user
    promotion_tags[f"{TAG_PREFIX}promotion.forced_reason"] = redact(force_reason)[:MAX_TAG_VAL_LENGTH]
    return promotion_tags


def _verdict_tags(verdict: Any) -> dict[str, str]:
    tags = {f"{TAG_PREFIX}promotion.verdict": verdict.verdict,
            f"{TAG_PREFIX}promotion.reasons": "\n".join(verdict.lines)[:MAX_TAG_VAL_LENGTH]}
    settings = getattr(verdict, "settings", None)
    if settings is not None:
        tags[f"{TAG_PREFIX}promotion.settings_hash"] = verdict.settings_hash
        tags[f"{TAG_PREFIX}promotion.settings"] = json.dumps(dict(settings), sort_keys=True)[:MAX_TAG_VAL_LENGTH]
    return tags


def rollback(tracking_uri: str, target: str, *, lock_wait_s: float = 600.0) -> RegisteredVersion:
    """Give champion back to previous_champion. previous_champion is consumed, so rolling back twice
    is an error rather than a silent flip back to the version that was just rolled back."""
    with target_lock(tracking_uri, target, wait_s=lock_wait_s), \
            _mlflow_errors(tracking_uri, f"rolling back {target!r}"), _quiet_mlflow():
        client = _client(tracking_uri)
        previous = _version_by_alias(client, target, PREVIOUS_CHAMPION)
        if previous is None:
            raise TerminalError(
                f"{target!r}: no {PREVIOUS_CHAMPION} to roll back to; promote a version by number instead "
                "(alignloop promote --version N; list them with alignloop versions)"
            )
        client.set_registered_model_alias(target, CHAMPION, previous.version)
        client.delete_registered_model_alias(target, PREVIOUS_CHAMPION)
        client.set_model_version_tag(target, previous.version, f"{TAG_PREFIX}rolled_back_at",
                                     datetime.now(UTC).isoformat(timespec="seconds"))
        return _registered(client.get_model_version(target, previous.version))


def describe(tracking_uri: str, target: str, version: int | None = None) -> list[dict[str, Any]]:
    """Every version of `target` (or just `version`), oldest first: aliases, lineage tags, completeness
    and its run's final metrics."""
    with _mlflow_errors(tracking_uri, f"describing {target!r}"), _quiet_mlflow():
        client = _client(tracking_uri)
        model = _registered_model(client, target)
        if model is None:
            return []
        # Searched versions come back without their aliases; the registered model maps alias -> version.
        aliases_of: dict[str, list[str]] = {}
        for alias, number in (model.aliases or {}).items():
            aliases_of.setdefault(str(number), []).append(alias)
        versions = _all_versions(client, target)
        if version is not None:
            versions = [mv for mv in versions if int(mv.version) == int(version)]
        return [_row(client, target, mv, aliases_of.get(str(mv.version), []))
                for mv in sorted(versions, key=lambda v: int(v.version))]


def find_version(tracking_uri: str, target: str, alias: str) -> RegisteredVersion | None:
    """The version that carries `alias`, or None when the alias (or the model) does not exist."""
    with _mlflow_errors(tracking_uri, f"looking up {target!r}@{alias}"), _quiet_mlflow():
        mv = _version_by_alias(_client(tracking_uri), target, alias)
        return None if mv is None else _registered(mv)


def files_sha256(paths: Sequence[Path]) -> str:
    """One sha256 over every file under `paths` (relative name and bytes, in sorted order)."""
    digest = hashlib.sha256()
    for root in paths:
        root = Path(root)
        for f in sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]:
            digest.update(f"{root.name}/{f.relative_to(root) if root.is_dir() else f.name}".encode() + b"\0")
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Helpers


def registry_user(tracking_uri: str) -> str:
    """Who is promoting, as the registry can tell: the user an MLflow server authenticates (the URI's user
    or MLFLOW_TRACKING_USERNAME, which the server checks against its password), else the operating-system
    account this process runs as (from its uid, not from $USER, which anyone can set)."""
    parts = urlsplit(tracking_uri)
    if parts.scheme in ("http", "https"):
        name = parts.username or os.environ.get("MLFLOW_TRACKING_USERNAME")
        if name:
            return f"mlflow user {name}"
    try:
        return f"os user {pwd.getpwuid(os.getuid()).pw_name}"
    except KeyError:
        return f"os uid {os.getuid()}"


def _is_complete(mv: ModelVersion) -> bool:
    return (mv.tags or {}).get(COMPLETE_TAG) == "true"


def _alias_points_to(client, target: str, alias: str, version: str | int) -> bool:
    mv = _version_by_alias(client, target, alias)
    return mv is not None and int(mv.version) == int(version)


def _all_versions(client, target: str) -> list[ModelVersion]:
    versions: list[ModelVersion] = []
    if _registered_model(client, target) is None:
        return versions
    token = None
    while True:
        page = client.search_model_versions(f"name = '{_quote(target)}'", max_results=1000, page_token=token)
        versions.extend(page)
        token = page.token
        if not token:
            return versions


def _abandon_incomplete(client, target: str) -> None:
    """Mark versions a killed registration left behind, and take any alias off them."""
    model = _registered_model(client, target)
    if model is None:
        return
    for mv in _all_versions(client, target):
        tags = dict(mv.tags or {})
        if tags.get(COMPLETE_TAG) == "true" or ABANDONED_TAG in tags:
            continue
        log.warning("%s version %s was left half-registered by an interrupted run; marking it abandoned",
                    target, mv.version)
        client.set_model_version_tag(target, mv.version, ABANDONED_TAG, "interrupted registration")
        for alias, number in (model.aliases or {}).items():
            if str(number) == str(mv.version):
                client.delete_registered_model_alias(target, alias)


def _row(client, target: str, mv: ModelVersion, aliases: Sequence[str] | None = None) -> dict[str, Any]:
    metrics: dict[str, float] = {}
    if mv.run_id:
        with contextlib.suppress(MlflowException):  # the run may have been deleted since
            metrics = dict(client.get_run(mv.run_id).data.metrics)
    tags = dict(mv.tags or {})
    return {
        "version": int(mv.version),
        "aliases": sorted(aliases if aliases is not None else (mv.aliases or [])),
        "run_id": mv.run_id,
        "tags": tags,
        "metrics": metrics,
        "complete": tags.get(COMPLETE_TAG) == "true",
        "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=UTC).isoformat(timespec="seconds"),
        "model_uri": f"models:/{target}/{mv.version}",
    }
