"""Plan -> a TRL trainer -> a candidate model folder (a LoRA adapter, or full weights).

One builder per trainer, named by each method's registration (alignloop.methods): dpo.py (DPO, IPO,
robust DPO on TRL's DPOTrainer), kto.py (KTOTrainer), rlhf.py (RewardTrainer then RLOOTrainer).
data.py tokenises, fits and orders the rows; fastpath.py computes reference log-probs once;
checkpoints.py resumes; launch.py runs it under `accelerate launch`.
TRL's trainers are used as they are; this package decides which one, with what, and how fast.
"""

from alignloop.training.common import ProgressFn, RunOptions, TrainResult
from alignloop.training.run import train_candidate

__all__ = ["ProgressFn", "RunOptions", "TrainResult", "train_candidate"]
