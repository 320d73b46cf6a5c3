"""KTO: unpaired thumbs up/down rows on TRL's KTOTrainer, weighted so up and down count alike."""

from alignloop.methods.base import TrainingMethod

KTO = TrainingMethod(
    name="kto",
    summary="thumbs up/down rows on TRL's KTOTrainer (pairs count as one up and one down answer)",
    builder="alignloop.training.kto:build_kto",
    feedback="thumbs",
    loss_type="kto",
    default_beta=0.1,
    benchmark_arms=("kto",),
    # Each step: the policy's forward and backward on the rows (3), its forward on the KL rows (each prompt
    # with another row's answer) and the reference's forward on both (3 more): TRL computes them per batch.
    passes_per_token=6.0,
)
