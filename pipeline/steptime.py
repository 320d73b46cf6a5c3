"""How fast training ran on this machine, kept beside the training cache: the next plan states its expected
wall time from it, and planning.budget_minutes bounds the steps with it instead of a guessed step time.

A step's time grows with the tokens it trains on, so the measurement keeps both, and a plan whose steps
hold more or fewer tokens (another batch size, longer rows) scales the measured step time by that ratio.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STEP_TIME_FILE = "step_time.json"


@dataclass(frozen=True)
class StepTime:
    """One training run's measured speed."""

    seconds_per_step: float     # wall seconds per optimizer step, from the first step to the last
    tokens_per_step: float      # prompt + answer tokens a step trained on, on average (padding excluded)
    setup_seconds: float        # before the first step: loading the model, tokenising, reference log-probs
    rows: int                   # distinct training rows (what setup_seconds grows with)
    steps: int                  # steps timed
    method: str
    device: str
    measured_at: str = ""
    precision: str = "float32"  # float32, or bfloat16 mixed precision (about half the step time on a bf16 CPU)
    before_plan: bool = False   # a few steps timed before the first plan here, on a sample of the rows

    def step_seconds(self, tokens_per_step: float | None = None) -> float:
        """Seconds a step of `tokens_per_step` tokens takes at the measured rate (the measured step when unknown)."""
        if not tokens_per_step or self.tokens_per_step <= 0:
            return self.seconds_per_step
        return self.seconds_per_step * tokens_per_step / self.tokens_per_step

    def setup_seconds_for(self, rows: int) -> float:
        """Setup time for `rows` training rows, in proportion to the measured run's."""
        return self.setup_seconds * rows / max(self.rows, 1)

    def describe(self) -> str:
        when = f" ({self.measured_at})" if self.measured_at else ""
        if self.before_plan:
            return (f"{self.seconds_per_step:.2g} s a step of about {self.tokens_per_step:.0f} tokens, timed over "
                    f"{self.steps} {self.method} steps on a sample of the rows before planning, on {self.device} in "
                    f"{self.precision}{when}")
        return (f"{self.seconds_per_step:.1f} s a step of about {self.tokens_per_step:.0f} tokens, measured over "
                f"{self.steps} {self.method} steps on {self.device} in {self.precision}{when}")


def measured(result: Any, measured_at: str = "", tokens_per_step: float | None = None) -> StepTime | None:
    """The StepTime of a TrainResult, or None when too few steps were timed to say.

    tokens_per_step: the plan's own count of a step's tokens (alignloop.planner `tokens_per_step`), so a later
    plan scales by the same yardstick; by default the tokens the steps trained on, per step."""
    if not getattr(result, "steps_timed", 0) or result.steps_timed < 2 or result.seconds_per_step is None:
        return None
    steps = result.hyperparameters.get("max_steps") or result.steps_timed
    tokens_per_step = tokens_per_step or result.tokens_trained / max(steps, 1)
    return StepTime(seconds_per_step=result.seconds_per_step, tokens_per_step=tokens_per_step,
                    setup_seconds=result.setup_seconds or 0.0, rows=result.n_train, steps=result.steps_timed,
                    method=result.method, device=result.device, measured_at=measured_at,
                    precision=getattr(result, "precision", "float32"))


def timed_before_plan(result: Any, measured_at: str = "") -> StepTime | None:
    """The StepTime of a few steps trained on a sample of the rows before the first plan (stages.plan): its
    setup is the reference log-probs' scoring alone, per row scored, since that is the part that grows with the
    rows (loading the model is a few seconds, and left out)."""
    timed = measured(result, measured_at)
    if timed is None:
        return None
    rows, seconds = (result.reference_rows, result.reference_seconds) if result.reference_rows else (1, 0.0)
    return StepTime(**{**asdict(timed), "setup_seconds": seconds, "rows": rows, "before_plan": True})


def write_step_time(folder: Path, step_time: StepTime) -> Path:
    """Keep `step_time` as the latest measurement of its method in folder/step_time.json (one per method)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / STEP_TIME_FILE
    found = {m: asdict(t) for m, t in read_step_times(folder).items()}
    found[step_time.method] = asdict(step_time)
    tmp = path.with_suffix(f".json.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def read_step_times(folder: Path) -> dict[str, StepTime]:
    """The latest measurement of each method in folder ({} when there is none or it cannot be read)."""
    path = Path(folder) / STEP_TIME_FILE
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())
        names = [f.name for f in fields(StepTime)]
        return {m: StepTime(**{k: v for k, v in t.items() if k in names}) for m, t in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        log.warning("ignoring an unreadable step-time measurement %s", path)
        return {}


def pick(step_times: dict[str, StepTime], method: str) -> StepTime | None:
    """The measurement of `method`, else the newest of another method (its step time is scaled by tokens alike)."""
    if method in step_times:
        return step_times[method]
    return max(step_times.values(), key=lambda t: t.measured_at, default=None)
