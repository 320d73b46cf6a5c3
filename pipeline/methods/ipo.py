"""IPO: preference pairs on TRL's DPOTrainer with the ipo loss, whose squared loss stops at a fixed
margin 1/(2 tau); beta is tau."""

from alignloop.methods.base import TrainingMethod

IPO = TrainingMethod(
    name="ipo",
    summary="pairs on TRL's DPOTrainer with the ipo loss (a fixed target margin)",
    builder="alignloop.training.dpo:build_dpo",
    feedback="pairs",
    loss_type="ipo",
    default_beta=0.5,
    benchmark_arms=("ipo",),
)
