"""The registry's commands behind `alignloop versions / promote / rollback / review`, and the lines the
run summary adds about the gate (kept here so flows/cli/main.py only registers them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alignloop.config import Settings
from alignloop.errors import ConfigError


def show_versions(settings: Settings, out: Console) -> None:
    from alignloop.registry import describe

    table = Table(title=settings.model_name)
    table.add_column("version")
    table.add_column("aliases", no_wrap=True)  # a wrapped alias ("challen-ger") is unreadable and unsearchable
    for name in ("method", "pref acc (ref → cand)", "gain [95% CI]"):
        table.add_column(name)
    table.add_column("gate (settings hash)", no_wrap=True)  # the verdict and the hash of the rules behind it
    table.add_column("created")
    for v in describe(settings.tracking_uri, settings.model_name):
        m, tags = v.get("metrics", {}), v.get("tags", {})
        acc = (f"{m['eval_pref_accuracy_reference']:.3f} → {m['eval_pref_accuracy_candidate']:.3f}"
               if "eval_pref_accuracy_candidate" in m else "—")
        state = tags.get("alignloop.gate.verdict", "—")
        if "alignloop.gate.settings_hash" in tags:  # which rules decided it: equal hashes, equal rules
            state = f"{state} ({tags['alignloop.gate.settings_hash']})"
        if "alignloop.promotion.forced_by" in tags:
            state = f"{state}, forced"
        if not v.get("complete"):
            state = "abandoned" if "alignloop.abandoned" in tags else "incomplete"
        table.add_row(str(v["version"]), ", ".join(v.get("aliases", [])), tags.get("alignloop.method", "—"), acc,
                      gain_text(m) or "—", state, str(v.get("created", "")).replace("T", " ")[:16])
    out.print(table)


def promote_version(settings: Settings, version: int | None, force: bool, reason: str | None, out: Console) -> None:
    from alignloop.gate import registry_check
    from alignloop.registry import promote

    if force and not (reason and reason.strip()):
        raise ConfigError("--force needs --reason TEXT: say why the gate is overridden (it is recorded on the version)")
    if reason and not force:
        raise ConfigError("--reason is recorded only with --force; drop it, or add --force to override the gate")
    v = promote(settings.tracking_uri, settings.model_name, version, check=registry_check(settings.promotion),
                force_reason=reason.strip() if force and reason else None, lock_wait_s=settings.promotion.lock_wait_s)
    forced = " (gate overridden with --force; who and why are recorded on the version)" if force else ""
    out.print(f"{v.name} version {v.version} is now champion{forced}", highlight=False)


def rollback_champion(settings: Settings, out: Console) -> None:
    from alignloop.registry import rollback

    v = rollback(settings.tracking_uri, settings.model_name, lock_wait_s=settings.promotion.lock_wait_s)
    out.print(f"{v.name} version {v.version} is champion again", highlight=False)


def review(settings: Settings, version: int | None, run: str | None, out: Console) -> Path:
    from alignloop import stages

    path = stages.review(settings, version=version, run=run)
    out.print(f"review page: {path}", highlight=False)
    return path


def gain_text(metrics: dict[str, float]) -> str | None:
    """'+0.047 [+0.012, +0.081] vs champion' — the gain the gate reads, with its 95% interval."""
    for key, against in (("eval_pref_accuracy_champion_delta", "champion"), ("eval_pref_accuracy_delta", "reference")):
        if key in metrics:
            low, high = metrics.get(f"{key}_ci_low"), metrics.get(f"{key}_ci_high")
            span = f" [{low:+.3f}, {high:+.3f}]" if low is not None and high is not None else " (no interval)"
            return f"{metrics[key]:+.3f}{span} vs {against}"
    return None


def summary_rows(outcome: Any) -> list[tuple[str, str]]:
    """The run summary's closing rows: the gain and its interval, the gate's verdict, the review page."""
    reg = outcome.registered or {}
    rows = []
    gain = gain_text(outcome.metrics)
    if gain:
        rows.append(("gain (95% CI)", gain))
    gate = reg.get("gate")
    if gate:
        rows.append(("gate", f"{gate['verdict'].upper()}\n" + "\n".join(escape(line) for line in gate["reasons"])))
    if reg.get("auto_promoted"):
        rows.append(("promoted", f"version {reg['version']} is champion (promotion.auto_promote)"))
    elif gate and gate["verdict"] == "pass":
        rows.append(("promote", "alignloop promote  (the gate passed; promotion.auto_promote is off)"))
    if reg.get("review_page"):
        rows.append(("review page", reg["review_page"]))
    return rows
