"""One training process under `accelerate launch`: `python -m pipeline.training.worker --config C --run R`.

Each process reads the same settings and run folder and calls the same train stage; TRL's Trainer
splits every step's batches across the processes. Errors print as one line, as the CLI's do.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from pipeline.errors import AlignloopError, ConfigError
from pipeline.offline import set_offline_defaults


def main(argv: list[str] | None = None) -> int:
    set_offline_defaults()
    parser = argparse.ArgumentParser(prog="pipeline.training.worker")
    parser.add_argument("--config", required=True)
    parser.add_argument("--run", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rank = os.environ.get("RANK", "0")
    if rank == "0":  # one process reports progress, so a log file holds one line per step interval
        logging.getLogger("pipeline.training.progress").setLevel(logging.INFO)
    from pipeline import stages
    from pipeline.config import load_settings

    try:
        settings = load_settings(args.config)
        stages.train(settings, stages.latest_run(settings, args.run))
    except AlignloopError as e:
        print(f"error (process {rank}): {e}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
