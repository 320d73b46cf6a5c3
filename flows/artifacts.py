"""What a person reads in the morning: each retrain run's results as Prefect markdown artifacts.

One artifact per stage that ran: what was ingested per source (rows, quarantined by reason), the data
shape and the plan with its reasons, the evaluation with its intervals, the gate's verdict line by line,
and the outcome with links to the MLflow run, the registered version and the review page. The text is
built by plain functions (tested without Prefect); `publish` hands it to the Prefect API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

KEYS = {name: f"alignloop-{name}" for name in ("ingest", "plan", "evaluation", "gate", "outcome")}


def _cell(value: Any) -> str:
    """Text that stays inside one table cell or list item: no line breaks, pipes escaped, and a backslash as
    an entity so that it cannot escape the cell's closing pipe."""
    return " ".join(str(value).replace("\\", "&#92;").replace("|", "\\|").splitlines())


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def ingest_markdown(ingested: list[dict[str, Any]], reasons: dict[str, list[tuple[str, int]]]) -> str:
    """Per source: rows read, feedback added, duplicates, pending, and what was quarantined by reason."""
    rows = []
    for r in ingested:
        why = "; ".join(f"{n} × {reason}" for reason, n in reasons.get(r["source"], [])) or "—"
        rows.append((r["source"], sum(r["rows_read"].values()), r["pairs_added"], r["unpaired_added"],
                     r.get("ranks_added", 0), r.get("duplicates", 0), r["pending"], r["quarantined"], why))
    return "# Ingested\n\n" + _table(("source", "rows read", "new pairs", "new thumbs", "new ranks", "duplicates",
                                       "pending", "quarantined", "quarantined by reason"), rows)


def plan_markdown(run_id: str, snapshot_id: str, plan: dict[str, Any]) -> str:
    """The method chosen for the snapshot, every reason, and the measures of the data's shape it rests on."""
    shape = plan.get("shape") or {}
    measures = [(k, shape[k]) for k in ("n_pairs", "n_pairs_train", "n_up", "n_down", "n_unpaired_train",
                                        "n_prompts", "pairs_from_thumbs_train", "chosen_longer_share", "first_ts",
                                        "last_ts") if k in shape]
    for name in ("pair_noise", "thumb_noise"):
        noise = shape.get(name) or {}
        if noise.get("flip_rate") is not None:
            measures.append((f"{name} (flip rate, 95% interval)",
                             f"{noise['flip_rate']:.3f} [{noise.get('low', float('nan')):.3f}, "
                             f"{noise.get('high', float('nan')):.3f}] from {noise.get('signal', '?')}"))
    hp = plan.get("hyperparameters") or {}
    steps = f", {hp['max_steps']} steps" if "max_steps" in hp else ""
    return (f"# Plan: {plan['method']}{steps}\n\nrun folder `{run_id}`, snapshot `{snapshot_id[:12]}`\n\n"
            + "\n".join(f"- {_cell(reason)}" for reason in plan.get("reasons", []))
            + "\n\n## Data shape\n\n" + _table(("measure", "value"), measures))


def evaluation_markdown(metrics: dict[str, float]) -> str:
    """Every evaluation metric with its 95% interval where it has one."""
    rows = []
    for name, value in metrics.items():
        if name.endswith(("_ci_low", "_ci_high")):
            continue
        low, high = metrics.get(f"{name}_ci_low"), metrics.get(f"{name}_ci_high")
        interval = "—" if low is None or high is None else f"[{low:.4f}, {high:.4f}]"
        rows.append((name, f"{value:.4f}", interval))
    return "# Evaluation\n\n" + _table(("metric", "value", "95% interval"), rows)


def gate_markdown(gate: dict[str, Any]) -> str:
    """The verdict, then each check as the gate wrote it (pass / fail / unmeasured: what, value, setting)."""
    return (f"# Gate: {gate['verdict'].upper()}\n\n"
            + "\n".join(f"- {_cell(line)}" for line in gate.get("reasons", [])))


def links(tracking_uri: str, registered: dict[str, Any], experiment_id: str | None = None) -> list[tuple[str, str]]:
    """(what, where) for the MLflow run, the registered version and the review page. Web links when
    MLflow is a server; otherwise the run id and model URI to open with the MLflow client or UI."""
    name, version, run_id = registered["name"], registered["version"], registered.get("run_id", "")
    out: list[tuple[str, str]] = []
    if tracking_uri.startswith(("http://", "https://")):
        parts = urlsplit(tracking_uri)  # a link carries no user or password
        base = urlunsplit((parts.scheme, parts.hostname + (f":{parts.port}" if parts.port else ""), parts.path, "",
                           "")).rstrip("/")
        if experiment_id:
            out.append(("MLflow run", f"{base}/#/experiments/{experiment_id}/runs/{run_id}"))
        out.append(("registered version", f"{base}/#/models/{quote(name)}/versions/{version}"))
    else:
        out.append(("MLflow run", f"run id `{run_id}`"))
        out.append(("registered version", f"`models:/{name}/{version}`"))
    if registered.get("review_page"):
        out.append(("review page", f"file://{registered['review_page']}"))
    return out


def outcome_markdown(headline: str, reasons: list[str], link_rows: list[tuple[str, str]]) -> str:
    """The run's outcome in one line (as in its Prefect state), the trigger and plan reasons, the links."""
    text = f"# {headline}\n\n" + "\n".join(f"- {_cell(r)}" for r in reasons)
    if link_rows:
        text += "\n\n" + _table(("", "link"), link_rows)
    return text


def publish(name: str, markdown: str, description: str) -> None:
    """Attach the markdown to the current flow or task run (Prefect API)."""
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(markdown=markdown, key=KEYS[name], description=description)
