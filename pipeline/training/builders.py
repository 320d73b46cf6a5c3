"""What a builder receives and returns: the same for DPO/IPO/robust, KTO and RLHF."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignloop.datasets import Split
from alignloop.planner import Plan
from alignloop.training.common import ProgressFn, RunOptions

DEFAULT_MAX_LENGTH_CAP = 1024


@dataclass(frozen=True)
class BuildContext:
    plan: Plan
    split: Split
    base_dir: Path
    run_dir: Path
    options: RunOptions
    progress: ProgressFn | None
    tokenizer: Any

    @property
    def hp(self) -> dict[str, Any]:
        return self.plan.hyperparameters

    @property
    def rows_per_run(self) -> int:
        """Row visits all optimizer steps make, over every process."""
        hp = self.hp
        return (hp["max_steps"] * hp["per_device_batch_size"] * hp["gradient_accumulation_steps"]
                * self.options.world_size)

    @property
    def max_length_cap(self) -> int:
        return int(self.hp.get("max_length_cap") or DEFAULT_MAX_LENGTH_CAP)

    @property
    def cache_dir(self) -> Path | None:
        return self.options.cache_dir


@dataclass
class Built:
    """A trainer ready to fit, and what building it measured."""

    trainer: Any
    n_train: int
    data_fingerprint: str
    max_length: int | None = None
    max_length_reason: str = ""
    truncation: dict[str, Any] = field(default_factory=dict)
    tokens_trained: int = 0
    notes: list[str] = field(default_factory=list)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    pre_history: list[dict[str, float]] = field(default_factory=list)   # an earlier phase's steps (RLHF's reward model)
    kind: str = "lora"
