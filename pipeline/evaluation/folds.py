"""The folds every judge alignloop fits is cross-fitted on: held-out prompts split in two by hash, so a
prompt is always judged by what was fitted on the other fold (evaluation/judge.py, evaluation/probe.py)."""

from __future__ import annotations

import hashlib

from alignloop.schema import prompt_key

FOLDS = 2
MIN_FIT_PAIRS = 8  # per fold: fewer cannot teach a judge anything worth grading


def judge_fold(prompt: list[dict[str, str]]) -> int:
    """The fold of a prompt, by hash: the same prompt is always in the same fold."""
    return int(hashlib.sha256(f"judge-fold:{prompt_key(prompt)}".encode()).hexdigest()[:8], 16) % FOLDS
