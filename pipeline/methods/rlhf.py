"""RLHF: a reward model fitted on the pairs (TRL's RewardTrainer), then online RL against it (TRL's
RLOOTrainer). Chosen only when asked for and planning.rlhf_compute_budget allows it."""

from alignloop.methods.base import TrainingMethod

RLHF = TrainingMethod(
    name="rlhf",
    summary="pairs fit a reward model (RewardTrainer), then online RL against it (RLOOTrainer); on request only",
    builder="alignloop.training.rlhf:build_rlhf",
    feedback="pairs",
    default_beta=0.05,
    online=True,
)
