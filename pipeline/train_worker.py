"""One training process under `accelerate launch`: `python -m alignloop.train_worker --config C --run R`.

Each process reads the same settings and run folder and calls the same train stage; TRL's Trainer
splits every step's batches across the processes. It sits beside stages.py, not inside training/, as the
train stage's entry point for launched processes. Errors print as one line, as the CLI's do.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from alignloop.errors import AlignloopError, ConfigError
from alignloop.offline import set_offline_defaults


def main(argv: list[str] | None = None) -> int:
    set_offline_defaults()
    parser = argparse.ArgumentParser(prog="alignloop.train_worker")
    parser.add_argument("--config", required=True)
    parser.add_argument("--run", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rank = os.environ.get("RANK", "0")
    if rank == "0":  # one process reports progress, so a log file holds one line per step interval
        logging.getLogger("alignloop.training.progress").setLevel(logging.INFO)
    from alignloop import runs, stages
    from alignloop.config import load_settings

    try:
        settings = load_settings(args.config)
        stages.train(settings, runs.latest_run(settings, args.run))
    except AlignloopError as e:
        print(f"error (process {rank}): {e}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
