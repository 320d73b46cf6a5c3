"""DPO: preference pairs on TRL's DPOTrainer. On noisy pairs the planner keeps DPO and switches its
loss to `robust` (cDPO), whose label_smoothing is the estimated flip rate."""

from alignloop.methods.base import TrainingMethod

DPO = TrainingMethod(
    name="dpo",
    summary="pairs on TRL's DPOTrainer (sigmoid loss; robust with label_smoothing on noisy pairs)",
    builder="alignloop.training.dpo:build_dpo",
    feedback="pairs",
    loss_type="sigmoid",
    default_beta=0.1,
    benchmark_arms=("dpo", "robust_dpo"),
)
