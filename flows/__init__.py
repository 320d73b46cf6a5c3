"""How alignloop runs: Prefect flows over the library's stages, and the command line (alignloop.cli).

Every way in (the console script, `python -m alignloop.flows.retrain`, a deployment's entrypoint run by
a worker) imports this package before Prefect, so its process defaults hold before Prefect reads its
settings: no usage pings or hub downloads, and a generous wait for a local Prefect API server.
"""

from alignloop.flows.defaults import set_run_defaults

set_run_defaults()
