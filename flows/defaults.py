"""Process defaults of every entry point that runs a flow; values already set in the environment win."""

from __future__ import annotations

import os

from alignloop.offline import set_offline_defaults

# Seconds a temporary (ephemeral) Prefect API server may take to answer. Prefect's default of 20 is missed
# on a machine busy with other work; a run that waits a little longer still registers its model.
STARTUP_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
DEFAULT_STARTUP_TIMEOUT_S = 300



def set_run_defaults() -> None:
    """No hub downloads or usage pings (alignloop.offline: Prefect's server analytics off, DO_NOT_TRACK), and
    a generous startup wait for a temporary Prefect API server."""
    set_offline_defaults()
    os.environ.setdefault(STARTUP_TIMEOUT_ENV, str(DEFAULT_STARTUP_TIMEOUT_S))
