"""The `accelerate launch` command line: TRL's shipped configs, process count, CPU fallbacks, bad options."""

from __future__ import annotations

from pathlib import Path

import pytest

from alignloop.errors import ConfigError
from alignloop.training.launch import accelerate_command, trl_accelerate_config


def test_default_is_trls_data_parallel_config_with_k_processes():
    cmd = accelerate_command(Path("/c/alignloop.yaml"), "run1", 4, None, cpu=False)
    config = Path(cmd[cmd.index("--config_file") + 1])
    assert config.name == "multi_gpu.yaml" and config.parent.name == "accelerate_configs" and config.is_file()
    assert cmd[cmd.index("--num_processes") + 1] == "4" and "--multi_gpu" in cmd
    assert "--mixed_precision" not in cmd          # on GPUs TRL's bf16 setting stands
    assert cmd[-6:] == ["-m", "alignloop.train_worker", "--config", "/c/alignloop.yaml", "--run", "run1"]


def test_fsdp2_uses_trls_fsdp2_yaml():
    cmd = accelerate_command(Path("c.yaml"), "r", 8, "fsdp2", cpu=False)
    assert Path(cmd[cmd.index("--config_file") + 1]).name == "fsdp2.yaml"
    assert "--multi_gpu" not in cmd                # the YAML says FSDP


def test_cpu_runs_without_bf16_and_refuses_sharding_configs():
    cmd = accelerate_command(Path("c.yaml"), "r", 2, None, cpu=True)
    assert cmd[cmd.index("--mixed_precision") + 1] == "no"
    with pytest.raises(ConfigError, match="--accelerate-config fsdp2 shards weights across GPUs"):
        accelerate_command(Path("c.yaml"), "r", 2, "fsdp2", cpu=True)


def test_unknown_config_and_zero_processes_are_one_line_errors():
    with pytest.raises(ConfigError, match="--accelerate-config: 'fsdp3' is not one of"):
        trl_accelerate_config("fsdp3")
    with pytest.raises(ConfigError, match="--num-processes: must be at least 1"):
        accelerate_command(Path("c.yaml"), "r", 0, None, cpu=False)


def test_zero3_names_deepspeed_when_it_is_missing(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name, *a))
    with pytest.raises(ConfigError, match="needs DeepSpeed: pip install deepspeed"):
        trl_accelerate_config("zero3")
