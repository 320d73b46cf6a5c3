"""Kept for imports written before training became a package: see pipeline/training/."""

from pipeline.training import ProgressFn, RunOptions, TrainResult, train_candidate

__all__ = ["ProgressFn", "RunOptions", "TrainResult", "train_candidate"]
