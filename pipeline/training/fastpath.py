"""Less work per step, same losses: reference log-probs computed once and cached, and the LM head run
only where a loss is taken.

- Reference log-probs: TRL's own `compute_ref_log_probs`, but over each distinct training row once,
  in length-sorted batches (almost no padding), cached on disk by base model and token ids, so a
  resumed or repeated run reads them back instead of recomputing.
- The LM head: TRL's fused head scores only the answer positions on CUDA but every position (prompt
  and padding too) elsewhere, to spare compilers that recompile per shape (Neuron). A CPU compiles
  nothing, so during our steps it scores only the answer positions there as well.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alignloop.training.common import format_seconds, progress_log

log = logging.getLogger(__name__)
# Seconds between progress lines while the reference log-probs are scored (minutes on a CPU for a few
# thousand rows, before the first step).
REPORT_EVERY_S = 30.0


@contextlib.contextmanager
def compact_lm_head() -> Iterator[None]:
    """Within this block TRL's fused LM head projects only labelled positions on CPU too."""
    import trl.trainer.utils as trl_utils

    original = trl_utils._use_triton

    def compact_on_cpu(device) -> bool:
        return device.type == "cpu" or original(device)

    trl_utils._use_triton = compact_on_cpu
    try:
        yield
    finally:
        trl_utils._use_triton = original


def model_fingerprint(model_dir: Path) -> str:
    """Identifies a model folder's weights by file names, sizes and modification times (cheap, no hashing of GBs)."""
    h = hashlib.sha256()
    folder = Path(model_dir).resolve()
    h.update(str(folder).encode())
    for path in sorted(folder.iterdir()):
        if path.suffix in (".safetensors", ".bin", ".json") and path.is_file():
            stat = path.stat()
            h.update(f"{path.name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _row_key(example: dict[str, Any], keys: tuple[str, ...]) -> str:
    return hashlib.sha256(json.dumps([example[k] for k in keys]).encode()).hexdigest()[:24]


def reference_logps(trainer, dataset, cache_file: Path | None, batch_size: int):
    """The dataset with ref_chosen_logps / ref_rejected_logps columns, each distinct row scored once."""
    keys = ("prompt_ids", "chosen_ids", "rejected_ids")
    examples = [{k: dataset[i][k] for k in keys} for i in range(len(dataset))] if len(dataset) else []
    row_keys = [_row_key(e, keys) for e in examples]
    cached: dict[str, list[float]] = {}
    if cache_file is not None and cache_file.is_file():
        try:
            cached = json.loads(cache_file.read_text())
        except (OSError, json.JSONDecodeError):
            cached = {}
    todo: dict[str, dict[str, Any]] = {}
    for key, e in zip(row_keys, examples, strict=True):
        if key not in cached:
            todo.setdefault(key, e)
    if todo:
        # Length-sorted, so each batch pads to nearly its own length.
        items = sorted(todo.items(), key=lambda kv: len(kv[1]["prompt_ids"]) + max(len(kv[1]["chosen_ids"]),
                                                                                     len(kv[1]["rejected_ids"])))
        # What scoring cost, for the plan's timed steps (alignloop.steptime.timed_before_plan).
        trainer.reference_timing = (len(items), _score(trainer, items, batch_size, cached))
        if cache_file is not None and trainer.accelerator.is_main_process:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(f".tmp-{random.getrandbits(32):08x}")
            tmp.write_text(json.dumps(cached))
            tmp.replace(cache_file)
        log.info("reference log-probs: %d distinct rows scored, %d read from the cache",
                 len(todo), len(set(row_keys)) - len(todo))
    dataset = dataset.add_column("ref_chosen_logps", [cached[k][0] for k in row_keys])
    return dataset.add_column("ref_rejected_logps", [cached[k][1] for k in row_keys])


def _score(trainer, items: list[tuple[str, dict[str, Any]]], batch_size: int, cached: dict[str, list[float]]) -> float:
    """Score the reference log-probs of `items` (key, row) in batches into `cached`, with progress lines; returns
    the seconds it took."""
    import torch

    # Time to go by tokens, not rows: the rows come shortest first, so the last ones take longest.
    tokens = [len(e["prompt_ids"]) * 2 + len(e["chosen_ids"]) + len(e["rejected_ids"]) for _, e in items]
    all_tokens, tokens_done = max(sum(tokens), 1), 0
    model = trainer.ref_model or trainer.model
    device = trainer.accelerator.device
    was_training = model.training
    model.eval()
    started = last = time.perf_counter()
    progress_log.info("reference log-probs: scoring %d distinct rows once before the first step (cached for "
                      "later runs)", len(items))
    try:
        for lo in range(0, len(items), batch_size):
            chunk = items[lo: lo + batch_size]
            batch = trainer.data_collator([e for _, e in chunk])
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            with compact_lm_head():
                chosen, rejected = trainer.compute_ref_log_probs(model, batch)
            for (key, _), c, r in zip(chunk, chosen.float().cpu().tolist(), rejected.float().cpu().tolist(),
                                      strict=True):
                cached[key] = [c, r]
            done, now = min(lo + batch_size, len(items)), time.perf_counter()
            tokens_done += sum(tokens[lo: lo + batch_size])
            if now - last >= REPORT_EVERY_S and done < len(items):
                last = now
                elapsed = now - started
                to_go = elapsed / max(tokens_done, 1) * (all_tokens - tokens_done)
                progress_log.info("reference log-probs: %d/%d rows, %s, about %s to go", done, len(items),
                                  format_seconds(elapsed), format_seconds(to_go))
    finally:
        model.train(was_training)
    return time.perf_counter() - started
