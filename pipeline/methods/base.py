"""What a training method is: its name, the feedback it trains on, its loss, its defaults and its builder.

A method is declared here as data, so that config validation, the planner and the benchmarks can read
it without loading a trainer; its builder (the code that makes the TRL trainer) is named by reference
and imported only when a run trains with it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class TrainingMethod:
    name: str                 # what training.method and a Plan's method say, e.g. "dpo"
    summary: str              # one line: the rows it trains on and the TRL trainer it uses (CLI help, docs)
    builder: str              # "module:function" taking a BuildContext, returning Built (pipeline/training/)
    feedback: Literal["pairs", "thumbs"]   # what it learns from: preference pairs, or thumbs up/down rows
    default_beta: float       # beta (IPO's tau, RLHF's KL coefficient) at the planner's reference data size
    loss_type: str | None = None           # the TRL loss_type it trains with, when its trainer has one
    # The arms `alignloop bench methods` trains for it (alignloop/benchmarks/methods.py); none: not benchmarked.
    benchmark_arms: tuple[str, ...] = ()
    # Model passes a trained token costs within a step, in forward-pass units (a backward counts 2): what a
    # plan scales another method's measured step time by. A pair method's reference log-probs are computed
    # once before the steps (alignloop.training.fastpath), so its step is the policy's forward and backward.
    passes_per_token: float = 3.0
    # Trains on answers it generates itself as it goes (online RL): its pace depends on those answers, so a few
    # steps on a sample do not time it (planning.time_steps skips it and assumes planning.seconds_per_step).
    online: bool = False

    @property
    def takes_sft_term(self) -> bool:
        """Whether training.sft_weight applies: a pair method with a TRL loss_type runs on DPOTrainer, whose
        loss list can add TRL's `sft` term (the chosen answers' negative log-likelihood)."""
        return self.feedback == "pairs" and self.loss_type is not None

    def load_builder(self) -> Callable[[Any], Any]:
        """The builder function, imported now (trainers load torch and TRL)."""
        module, _, function = self.builder.partition(":")
        return getattr(importlib.import_module(module), function)
