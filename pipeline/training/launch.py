"""Run the same training on several processes (GPUs) through `accelerate launch` with TRL's shipped configs.

`alignloop train --launcher accelerate --num-processes K [--accelerate-config fsdp2|zero3]` starts K
copies of `python -m alignloop.train_worker`, each training its share of every step's batches
(data parallel: DDP by default, FSDP2 or DeepSpeed ZeRO-3 when asked). Rank 0 writes train.json and
the candidate. On a machine without a GPU the processes run on CPU with the gloo backend (slow; for
tests and rehearsals).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from alignloop.errors import ConfigError, TerminalError

ACCELERATE_CONFIGS = ("multi_gpu", "fsdp2", "zero3", "fsdp1", "zero1", "zero2")


def trl_accelerate_config(name: str) -> Path:
    """The YAML TRL ships for `name` (multi_gpu, fsdp2, zero3, ...), inside the installed trl package."""
    if name not in ACCELERATE_CONFIGS:
        raise ConfigError(f"--accelerate-config: {name!r} is not one of {', '.join(ACCELERATE_CONFIGS)}")
    spec = importlib.util.find_spec("trl")
    if spec is None or spec.origin is None:
        raise ConfigError("--launcher accelerate needs trl installed (pip install trl)")
    path = Path(spec.origin).parent / "accelerate_configs" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"--accelerate-config: this trl has no {path.name} in {path.parent}; pick another")
    if name.startswith("zero") and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(f"--accelerate-config {name} needs DeepSpeed: pip install deepspeed (on the GPU machine)")
    return path


def accelerate_command(config_file: Path, run: str, num_processes: int, accelerate_config: str | None,
                       *, cpu: bool, port: int | None = None) -> list[str]:
    """The `accelerate launch` command line that trains `run` on `num_processes` processes."""
    if num_processes < 1:
        raise ConfigError("--num-processes: must be at least 1")
    name = accelerate_config or "multi_gpu"
    if cpu and name != "multi_gpu":
        raise ConfigError(f"--accelerate-config {name} shards weights across GPUs and needs one; "
                          "on CPU leave it unset (data parallel over processes)")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(trl_accelerate_config(name)),
           "--num_processes", str(num_processes), "--num_machines", "1"]
    if num_processes > 1 and name == "multi_gpu":
        cmd += ["--multi_gpu"]
    if cpu:
        # TRL's configs ask for bf16 everywhere; each process sets it from training.precision instead (its
        # TrainingArguments override this flag); gloo instead of NCCL.
        cmd += ["--mixed_precision", "no"]
    if port is not None:
        cmd += ["--main_process_port", str(port)]
    return cmd + ["-m", "alignloop.train_worker", "--config", str(config_file), "--run", run]


def launch_accelerate(config_file: Path, run: str, num_processes: int, accelerate_config: str | None = None,
                      *, cpu: bool | None = None, port: int | None = None) -> int:
    """Run the training processes and wait; returns their exit status (0: every process finished)."""
    if cpu is None:
        import torch

        cpu = not torch.cuda.is_available()
    cmd = accelerate_command(Path(config_file).resolve(), run, num_processes, accelerate_config, cpu=cpu, port=port)
    env = dict(os.environ)
    if cpu:
        env["ACCELERATE_USE_CPU"] = "true"
        env.setdefault("OMP_NUM_THREADS", "1")
    try:
        return subprocess.run(cmd, env=env, check=False).returncode
    except OSError as e:
        raise TerminalError(f"could not start `accelerate launch`: {e}") from None
