"""`alignloop bench train`: alignloop's DPO training against a plain TRL DPOTrainer script, side by side.

Both train a LoRA adapter (r=16 on q/k/v/o) on the same base model, the same pairs, steps, batch and
max_length, one after the other in fresh processes (so each one's peak memory is its own). The plain
script is what a TRL user writes: DPOConfig defaults except those settings, gradient checkpointing off
on CPU, as alignloop does there (TRL's CPU defaults ran 12.7x slower; comparing against that would only
measure a setting), and the same precision as alignloop's (training.precision, auto by default: bfloat16
mixed precision where the hardware computes it natively). alignloop starts cold: no token or reference
cache. With --against-float32 a third run trains alignloop in float32, for the mixed precision's speed-up
measured beside it.

tokens/s = prompt + answer tokens of the sequences the steps trained on (no padding) / wall seconds
from loading the model to the saved adapter. Peak memory: the process's peak RSS on CPU, peak
allocated GPU memory on CUDA.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LORA = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}


def demo_pairs(workdir: Path) -> list[dict[str, Any]]:
    """The demo warehouse's training pairs, through the real ingest and split (what `alignloop demo` trains on)."""
    from alignloop.config import load_settings
    from alignloop.datasets import split_snapshot
    from alignloop.demo import write_demo_config, write_demo_warehouse
    from alignloop.stages import _read_snapshot, ingest

    write_demo_warehouse(workdir / "warehouse.duckdb")
    settings = load_settings(write_demo_config(workdir, tiny=True))
    ingest(settings)
    _, unpaired, pairs = _read_snapshot(settings)
    split = split_snapshot(unpaired, pairs, settings.evaluation.holdout_fraction)
    return [{"prompt": list(r["prompt"]), "chosen": r["chosen"], "rejected": r["rejected"]} for r in split.train_pairs]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_memory_bytes(device: str) -> int:
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _worker_plain(spec: dict[str, Any]) -> dict[str, Any]:
    """The baseline: a plain TRL script, as its documentation writes one."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    on_cpu = spec["device"] == "cpu"
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32 if on_cpu else torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])
    dataset = Dataset.from_list([
        {"prompt": p["prompt"], "chosen": [{"role": "assistant", "content": p["chosen"]}],
         "rejected": [{"role": "assistant", "content": p["rejected"]}]} for p in spec["pairs"]])
    args = DPOConfig(output_dir=spec["out_dir"], max_steps=spec["steps"], per_device_train_batch_size=spec["batch"],
                     max_length=spec["max_length"], learning_rate=spec["learning_rate"], seed=spec["seed"],
                     logging_steps=1, report_to=[], save_strategy="no", use_cpu=on_cpu,
                     bf16=spec["precision"] == "bfloat16", gradient_checkpointing=not on_cpu)
    peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                             target_modules=LORA["target_modules"], task_type="CAUSAL_LM")
    trainer = DPOTrainer(model=model.to(spec["device"]), args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=peft_config)
    trainer.train()
    trainer.save_model(spec["out_dir"])
    wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return {"wall_s": wall, "cpu_s": cpu, "rows_kept": len(trainer.train_dataset), "losses": losses,
            "peak_memory_bytes": _peak_memory_bytes(spec["device"])}


def _worker_alignloop(spec: dict[str, Any]) -> dict[str, Any]:
    # The libraries are imported before the clock starts, as the plain script's are.
    import datasets  # noqa: F401
    import peft  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
    import trl  # noqa: F401

    from alignloop.datasets import Split
    from alignloop.planner import Plan
    from alignloop.training import RunOptions, train_candidate

    hp = {"max_steps": spec["steps"], "learning_rate": spec["learning_rate"], "beta": 0.1,
          "per_device_batch_size": spec["batch"], "gradient_accumulation_steps": 1, "max_length": spec["max_length"],
          "seed": spec["seed"], "lora": LORA, "loss_type": ["sigmoid"]}
    split = Split([], spec["pairs"], [], [])
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    result = train_candidate(Plan("dpo", hp, ("benchmark",)), split, Path(spec["model_dir"]), Path(spec["out_dir"]),
                             device=spec["device"],
                             options=RunOptions(device=spec["device"], log_every=0, precision=spec["precision"]))
    wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
    return {"wall_s": wall, "cpu_s": cpu, "rows_kept": result.n_train, "losses": [h["loss"] for h in result.history],
            "tokens_trained": result.tokens_trained, "truncation": result.truncation, "precision": result.precision,
            "peak_memory_bytes": _peak_memory_bytes(spec["device"])}


def _run_worker(kind: str, spec: dict[str, Any], nice: int = 0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
        spec = {**spec, "out_dir": str(Path(tmp) / "out")}
        spec_file, out_file = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_file.write_text(json.dumps(spec))
        cmd = [sys.executable, "-m", "alignloop.benchmarks.train", "--worker", kind,
               "--spec", str(spec_file), "--out", str(out_file)]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "TQDM_DISABLE": "1"}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not out_file.exists():
            raise RuntimeError(f"the {kind} run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        return json.loads(out_file.read_text())


def sequence_tokens(model_dir: Path, pairs: list[dict[str, Any]]) -> list[int]:
    """Per pair: tokens of prompt+chosen plus prompt+rejected, split as TRL splits them."""
    from alignloop.models import load_tokenizer
    from alignloop.training.data import encode_turns

    tokenizer = load_tokenizer(model_dir)
    out = []
    for p in pairs:
        prompt, (chosen, rejected) = encode_turns(tokenizer, p["prompt"], [p["chosen"], p["rejected"]])
        out.append(2 * len(prompt) + len(chosen) + len(rejected))
    return out


def resolve_model(model: str, cache_dir: Path) -> Path:
    from alignloop.config import BaseModelSettings
    from alignloop.models import resolve_base_model

    if model == "tiny":
        return resolve_base_model(BaseModelSettings(tiny=True), cache_dir)
    if model == "smollm2":
        return resolve_base_model(BaseModelSettings(packaged="smollm2-135m-instruct"), cache_dir)
    return resolve_base_model(BaseModelSettings(path=Path(model)), cache_dir)


def bench_train(model: str = "smollm2", steps: int = 12, batch: int = 4, max_length: int = 160, repeats: int = 1,
                learning_rate: float = 3e-4, device: str = "cpu", cache_dir: Path | None = None,
                on_run=None, precision: str = "auto", against_float32: bool = False) -> dict[str, Any]:
    """Both trainings (and alignloop in float32 with against_float32), `repeats` times each (alternating), and
    their medians and ratios."""
    from alignloop.models import training_precision

    precision = training_precision(precision, device)
    cache_dir = cache_dir or Path.home() / ".cache" / "alignloop" / "models"
    model_dir = resolve_model(model, cache_dir)
    with tempfile.TemporaryDirectory(prefix="bench-train-demo-") as tmp:
        pairs = demo_pairs(Path(tmp))
    lengths = sequence_tokens(model_dir, pairs)
    # Only pairs both sides keep whole, so both train on exactly the same tokens (TRL would drop or cut others).
    per_pair = _longest_sequence(model_dir, pairs)
    usable = [(p, n) for p, n, longest in zip(pairs, lengths, per_pair, strict=True) if longest <= max_length]
    need = steps * batch
    if len(usable) < need:
        raise ValueError(f"only {len(usable)} demo pairs fit max_length {max_length}; need {need} (steps x batch)")
    chosen = usable[:need]  # one epoch exactly: both read every pair once
    spec = {"model_dir": str(model_dir), "pairs": [p for p, _ in chosen], "steps": steps, "batch": batch,
            "max_length": max_length, "learning_rate": learning_rate, "seed": 0, "device": device,
            "precision": precision}
    tokens = sum(n for _, n in chosen)
    kinds = ["plain_trl", "alignloop"] + (["alignloop_float32"] if against_float32 else [])
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    for i in range(repeats):
        for kind in (kinds if i % 2 == 0 else kinds[::-1]):
            worker = "alignloop" if kind == "alignloop_float32" else kind
            arm = {**spec, "precision": "float32"} if kind == "alignloop_float32" else spec
            result = _run_worker(worker, arm)
            result["tokens_per_s"] = tokens / result["wall_s"]
            result["tokens_per_cpu_s"] = tokens / result["cpu_s"]
            runs[kind].append(result)
            if on_run:
                on_run(kind, result)
    med = {k: {"wall_s": statistics.median(r["wall_s"] for r in v),
               "tokens_per_s": statistics.median(r["tokens_per_s"] for r in v),
               "cpu_s": statistics.median(r["cpu_s"] for r in v),
               "tokens_per_cpu_s": statistics.median(r["tokens_per_cpu_s"] for r in v),
               "peak_memory_bytes": statistics.median(r["peak_memory_bytes"] for r in v),
               "rows_kept": v[0]["rows_kept"]} for k, v in runs.items()}
    extra = {}
    if against_float32:
        # alignloop at `precision` against alignloop in float32: the mixed precision's speed-up alone.
        extra["precision_speedup"] = med["alignloop_float32"]["wall_s"] / med["alignloop"]["wall_s"]
        extra["alignloop_float32"] = med["alignloop_float32"]
    return {
        "model": model, "device": device, "precision": precision, "steps": steps, "batch": batch,
        "max_length": max_length, "pairs": need, "tokens": tokens, "repeats": repeats, **extra,
        "tokens_per_s_ratio": med["alignloop"]["tokens_per_s"] / med["plain_trl"]["tokens_per_s"],
        "peak_memory_ratio": med["alignloop"]["peak_memory_bytes"] / med["plain_trl"]["peak_memory_bytes"],
        # On a shared machine wall time moves with the neighbours' load; CPU seconds measure the work done.
        "tokens_per_cpu_s_ratio": med["alignloop"]["tokens_per_cpu_s"] / med["plain_trl"]["tokens_per_cpu_s"],
        "alignloop": med["alignloop"], "plain_trl": med["plain_trl"],
        "runs": runs,
    }


def describe_run(kind: str, r: dict[str, Any]) -> str:
    return (f"{kind}: {r['wall_s']:.1f}s ({r['cpu_s']:.1f} CPU s), {r['tokens_per_s']:.1f} tokens/s, "
            f"peak {r['peak_memory_bytes'] / 2**30:.2f} GiB")


def result_table(result: dict[str, Any]):
    from rich.table import Table

    table = Table("", "plain TRL", "alignloop", "ratio",
                  title=f"DPO training, {result['model']} ({result['device']}, {result['precision']}), "
                        f"{result['steps']} steps x "
                        f"{result['batch']} pairs, max_length {result['max_length']}, {result['tokens']} tokens")
    a, p = result["alignloop"], result["plain_trl"]
    table.add_row("tokens/s", f"{p['tokens_per_s']:.1f}", f"{a['tokens_per_s']:.1f}",
                  f"{result['tokens_per_s_ratio']:.2f}x")
    table.add_row("peak memory (GiB)", f"{p['peak_memory_bytes'] / 2**30:.2f}", f"{a['peak_memory_bytes'] / 2**30:.2f}",
                  f"{result['peak_memory_ratio']:.2f}x")
    table.add_row("tokens per CPU second", f"{p['tokens_per_cpu_s']:.1f}", f"{a['tokens_per_cpu_s']:.1f}",
                  f"{result['tokens_per_cpu_s_ratio']:.2f}x")
    table.add_row("wall (s)", f"{p['wall_s']:.1f}", f"{a['wall_s']:.1f}", "")
    if "alignloop_float32" in result:
        f32 = result["alignloop_float32"]
        table.add_row("alignloop in float32: wall (s)", "", f"{f32['wall_s']:.1f}",
                      f"{result['precision_speedup']:.2f}x faster in {result['precision']}")
    return table


def _longest_sequence(model_dir: Path, pairs: list[dict[str, Any]]) -> list[int]:
    from alignloop.models import load_tokenizer
    from alignloop.training.data import encode_turns

    tokenizer = load_tokenizer(model_dir)
    out = []
    for p in pairs:
        prompt, answers = encode_turns(tokenizer, p["prompt"], [p["chosen"], p["rejected"]])
        out.append(len(prompt) + max(len(a) for a in answers))
    return out


def _worker_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", choices=["plain_trl", "alignloop"], required=True)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text())
    run = _worker_plain if args.worker == "plain_trl" else _worker_alignloop
    Path(args.out).write_text(json.dumps(run(spec)))
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
