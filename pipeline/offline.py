"""Process defaults for running without a network: no hub downloads, no usage pings.

Call before transformers, datasets, MLflow or Prefect are imported; values already set win.
"""

from __future__ import annotations

import os

OFFLINE_DEFAULTS = {
    # Models load from local folders only; nothing may download at run time.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # No usage pings: machines running this are often offline, and the data is our users'.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
}


def set_offline_defaults() -> None:
    for name, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(name, value)
