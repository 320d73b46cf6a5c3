"""`alignloop bench outcome`: the command around benchmarks/outcome.py (progress, table, JSON, run log)."""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from alignloop.benchmarks.outcome import ARMS, OutcomeSetup, append_log, gain_text, run_outcome
from alignloop.errors import ConfigError

# The per-arm fields --json always prints.
JSON_FIELDS = ("arm", "method", "gain", "gain_ci_low", "gain_ci_high", "pairs", "seconds")


def parse_settings(items: list[str]) -> dict[str, Any]:
    """--set KEY=VALUE (values read as YAML) into training settings, checked as TrainingSettings checks them."""
    from pydantic import ValidationError

    from alignloop.config import TrainingSettings, describe_validation_error

    settings: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set: {item!r} is not KEY=VALUE (e.g. --set learning_rate=5e-4)")
        settings[key.strip()] = yaml.safe_load(value)
    if "method" in settings:
        raise ConfigError("--set method: each arm sets its own method; choose arms with --arms")
    try:
        TrainingSettings(**settings)
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e, prefix="--set training.")) from None
    return settings


def parse_choices(option: str, text: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated option's values, each one of `allowed`; ConfigError naming the option otherwise."""
    chosen = tuple(a.strip() for a in text.split(",") if a.strip())
    unknown = [a for a in chosen if a not in allowed]
    if unknown or not chosen:
        raise ConfigError(f"{option}: {', '.join(unknown) or 'none given'}: choose from {', '.join(allowed)}")
    return chosen


def parse_arms(text: str) -> tuple[str, ...]:
    return parse_choices("--arms", text, ARMS)


def bench_outcome(setup: OutcomeSetup, *, as_json: bool, out_dir: Path, log: Path | None, console, out) -> dict:
    """Run the benchmark; save outcome.json under out_dir (and append the record to `log`); print a table or JSON."""
    with tempfile.TemporaryDirectory(prefix="bench-outcome-") as tmp:
        result = run_outcome(setup, Path(tmp), progress=lambda msg: console.print(f"[cyan]▶[/] {msg}", highlight=False))
    result["command"] = " ".join(["alignloop", *map(shlex.quote, sys.argv[1:])])
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "outcome.json").write_text(json.dumps(result, indent=1) + "\n")
    if log is not None:
        append_log(log, result)
    if as_json:
        print(json.dumps({"arms": result["arms"], **{k: v for k, v in result.items() if k != "arms"}}, indent=1))
    else:
        out.print(outcome_table(result))
    return result


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _win_rate(arm: dict) -> str:
    """The judged win rate over the reference with its interval, or why there is none."""
    won = arm.get("win_rate")
    if won is not None:
        return f"{_pct(won['value'])} [{_pct(won['ci_low'])}, {_pct(won['ci_high'])}]"
    if arm.get("judge_accuracy") is not None:
        return f"— (judge {_pct(arm['judge_accuracy'])} % accurate: unusable)"
    return "—"


def _degenerate(arm: dict) -> str:
    """The share of the candidate's greedy answers that are degenerate, the reference's beside it."""
    if arm.get("degenerate_rate") is None:
        return "—"
    return f"{_pct(arm['degenerate_rate'])} ({_pct(arm['degenerate_rate_reference'])})"


def outcome_table(result: dict):
    from rich.table import Table

    setup = result["setup"]
    title = (f"held-out preference accuracy (%) on the {setup['split']} split, {result['data']['train_pairs']} "
             "training pairs")
    table = Table("arm", "method", "pairs", "reference", "candidate", "gain [95% interval]", "reward acc",
                  "judged win rate", "degenerate (ref)", "KL", "steps", "s", title=title)
    for a in result["arms"]:
        ref, cand = a["reference_accuracy"], a["candidate_accuracy"]
        table.add_row(a["arm"] + (f" (= {a['same_as']})" if a.get("same_as") else ""), a["method"], str(a["pairs"]),
                      _pct(ref["value"]), _pct(cand["value"]),
                      gain_text(a, scale=100, digits=1),
                      _pct(a["reward_accuracy"]), _win_rate(a), _degenerate(a),
                      "—" if a["kl"] is None else f"{a['kl']['value']:.2f}", str(a["steps"]), f"{a['seconds']:.0f}")
    return table
