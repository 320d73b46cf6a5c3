"""MLflow side of alignloop: log a training run, register its model as a new version of the target,
and move the aliases (newest, challenger, champion, previous_champion) that the gate and the server read.
Every MLflow failure leaves this package as a TransientError or a TerminalError with a secret-free message.

access.py   clients, names, errors, quiet output    served.py  the pyfunc model and how it is logged
versions.py register / promote / rollback / describe fetch.py   a version as a local HF folder
lock.py     one registration at a time per target
"""

from alignloop.registry.access import (
    CHALLENGER,
    CHAMPION,
    COMPLETE_TAG,
    NEWEST,
    PREVIOUS_CHAMPION,
    TAG_PREFIX,
    RegisteredVersion,
    _mlflow_errors,
    redact,
)
from alignloop.registry.fetch import fetch_version_model
from alignloop.registry.lock import target_lock
from alignloop.registry.versions import describe, files_sha256, find_version, log_and_register, promote, rollback

__all__ = [
    "CHALLENGER", "CHAMPION", "COMPLETE_TAG", "NEWEST", "PREVIOUS_CHAMPION", "TAG_PREFIX", "RegisteredVersion",
    "_mlflow_errors", "describe", "fetch_version_model", "files_sha256", "find_version", "log_and_register", "promote",
    "redact", "rollback", "target_lock",
]
