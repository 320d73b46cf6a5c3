"""One registration (or promotion) at a time per target, across processes and machines.

- sqlite store: an exclusive flock on `<db>.<target>.alignloop-lock` beside the database. The OS
  releases it when the holder exits, however it exits.
- any other store (an MLflow server, a database URI): a registered model named
  `<target>.alignloop-lock` is the mutex. MLflow refuses to create a registered model whose name
  exists (a unique key in its database), so of two runs creating it at once exactly one wins. It
  carries its holder and an expiry as tags; the holder deletes it when done. A holder killed without
  cleanup leaves it until it expires (lease_s, default 6 h), after which the next run removes it;
  deleting that registered model by hand frees it at once. A server offers no lock of its own, so
  this is the one atomic step its API has: create-if-absent.

The lock is re-entrant within a process: the retrain flow holds it from plan to register, and the
register stage inside it takes it again without waiting on itself.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

from mlflow.exceptions import MlflowException

from alignloop.errors import TerminalError
from alignloop.registry.access import TAG_PREFIX, _client, _mlflow_errors, _quiet_mlflow, _registered_model
from alignloop.registry.filelock import exclusive, holder_line, sqlite_db_path

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".alignloop-lock"
_HOLDER_TAG, _EXPIRES_TAG = f"{TAG_PREFIX}lock_holder", f"{TAG_PREFIX}lock_expires"
_held: dict[str, int] = {}
_held_guard = threading.Lock()


def _busy_hint(target: str) -> str:
    return (f"another alignloop run is registering or promoting {target!r}; wait for it to finish "
            "(raise promotion.lock_wait_s to wait longer), then run again")


@contextlib.contextmanager
def target_lock(tracking_uri: str, target: str, *, wait_s: float = 600.0, lease_s: float = 6 * 3600) -> Iterator[None]:
    """Hold the target's lock for the body; wait up to wait_s for another holder, then a TerminalError."""
    key = f"{tracking_uri}\0{target}"
    with _held_guard:
        if _held.get(key):
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    db = sqlite_db_path(tracking_uri)
    if db is not None:
        acquired = exclusive(db.with_name(f"{db.name}.{target}{LOCK_SUFFIX}"), wait_s=wait_s,
                             what=f"the registry lock of {target!r}", busy_hint=_busy_hint(target))
    else:
        acquired = _server_lock(tracking_uri, target, wait_s=wait_s, lease_s=lease_s)
    with acquired:
        with _held_guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _held_guard:
                _held.pop(key, None)


@contextlib.contextmanager
def _server_lock(tracking_uri: str, target: str, *, wait_s: float, lease_s: float) -> Iterator[None]:
    name = f"{target}{LOCK_SUFFIX}"
    deadline, announced = time.monotonic() + wait_s, False
    with _mlflow_errors(tracking_uri, f"taking the registry lock of {target!r}"), _quiet_mlflow():
        client = _client(tracking_uri)
        while True:
            holder = holder_line()
            try:
                client.create_registered_model(
                    name, tags={_HOLDER_TAG: holder, _EXPIRES_TAG: str(time.time() + lease_s)},
                    description=f"Lock: {holder} is registering or promoting {target}. Delete to free it.")
                break
            except MlflowException as e:
                if e.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            current = _registered_model(client, name)
            if current is None:
                continue  # freed meanwhile
            tags = dict(current.tags or {})
            if float(tags.get(_EXPIRES_TAG, "0") or 0) < time.time():
                log.warning("removing the expired registry lock of %r (%s)", target, tags.get(_HOLDER_TAG))
                with contextlib.suppress(MlflowException):
                    client.delete_registered_model(name)
                continue
            if time.monotonic() >= deadline:
                raise TerminalError(f"the registry lock of {target!r} is busy: held by "
                                    f"{tags.get(_HOLDER_TAG, 'another process')}; {_busy_hint(target)}")
            if not announced:
                log.warning("the registry lock of %r is held by %s; waiting up to %.0fs",
                            target, tags.get(_HOLDER_TAG), wait_s)
                announced = True
            time.sleep(1.0)
    try:
        yield
    finally:
        with _mlflow_errors(tracking_uri, f"releasing the registry lock of {target!r}"), _quiet_mlflow():
            with contextlib.suppress(MlflowException):
                _client(tracking_uri).delete_registered_model(name)
