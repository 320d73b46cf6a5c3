"""The run folder (runs/<id>/): where each stage reads what the one before it wrote.

One module owns its files, so stages, the review page and the accelerate worker share one reader:
snapshot.json and plan.json (written by `plan`), train.json, eval_report.json, gate.json, registered.json,
and the NEWEST marker naming the newest planned run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alignloop.errors import TerminalError
from alignloop.ingest.store import Snapshot
from alignloop.planner import Plan


@dataclass(frozen=True)
class PlannedRun:
    """A run folder after planning: the snapshot it reads, its shape and its plan."""

    run_dir: Path
    snapshot: Snapshot
    plan: Plan

    @property
    def run_id(self) -> str:
        return self.run_dir.name


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, default=str, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    if not path.exists():
        raise TerminalError(f"{path} is missing: run the earlier stage first (alignloop plan / train)")
    return json.loads(path.read_text())


def new_run(runs_dir: Path, snapshot: Snapshot, plan: Plan) -> PlannedRun:
    """A new run folder for a planned snapshot, marked NEWEST, holding snapshot.json and plan.json."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    run_dir = runs_dir / f"{stamp}-{snapshot.snapshot_id[:8]}"
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "snapshot.json", asdict(snapshot))
    write_json(run_dir / "plan.json", plan.to_dict())
    (runs_dir / "NEWEST").write_text(run_dir.name + "\n")
    return PlannedRun(run_dir, snapshot, plan)


def latest_run(settings: Any, run: str | None = None) -> PlannedRun:
    """A run folder by name, or the latest one planned."""
    if run is None:
        marker = settings.runs_dir / "NEWEST"
        if not marker.exists():
            raise TerminalError(f"no planned run under {settings.runs_dir}: run `alignloop plan` first")
        run = marker.read_text().strip()
    run_dir = settings.runs_dir / run
    snap = read_json(run_dir / "snapshot.json")
    snap["created_at"] = datetime.fromisoformat(snap["created_at"])
    p = read_json(run_dir / "plan.json")
    return PlannedRun(run_dir, Snapshot(**snap), Plan(p["method"], p["hyperparameters"], tuple(p["reasons"]), p["shape"],
                                                          p.get("estimate", {})))
