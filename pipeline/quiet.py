"""Library chatter a user of alignloop should not have to read: deprecation notices meant for the ML
libraries' maintainers, their INFO logs and their per-model progress bars. Called once by the command
line, and by each worker process a benchmark starts (whose bars would otherwise flood a piped log)."""

from __future__ import annotations

import logging
import warnings


def quiet_libraries() -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("transformers", "datasets", "mlflow", "alembic", "httpx", "prefect"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        import datasets

        datasets.utils.logging.disable_progress_bar()
    except ImportError:
        pass
