"""Exclusive file locks (flock) for an MLflow sqlite store, and where that store's file lies.

The operating system drops a flock when its holder exits, so a killed run never leaves a lock held.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

from alignloop.errors import TerminalError

log = logging.getLogger(__name__)


def sqlite_db_path(tracking_uri: str) -> Path | None:
    """The database file of a sqlite:/// URI (None for any other store)."""
    if not tracking_uri.startswith("sqlite:"):
        return None
    db = Path(unquote(urlparse(tracking_uri).path))
    if tracking_uri.startswith("sqlite:////"):  # four slashes: an absolute path
        return Path("/" + str(db).lstrip("/"))
    return Path(str(db).lstrip("/")).resolve()


def holder_line() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()} since {datetime.now(UTC).isoformat(timespec='seconds')}"


@contextlib.contextmanager
def exclusive(path: Path, *, wait_s: float, what: str, busy_hint: str) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing), waiting up to wait_s seconds for it.

    While waiting it logs one line naming the holder; when the wait runs out it raises a TerminalError
    whose message names the holder and `busy_hint` (what to do).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline, announced = time.monotonic() + wait_s, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _read_holder(fd)
                if time.monotonic() >= deadline:
                    raise TerminalError(f"{what} is busy: held by {holder}; {busy_hint}") from None
                if not announced:
                    log.warning("%s is held by %s; waiting up to %.0fs", what, holder, wait_s)
                    announced = True
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder_line().encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_holder(fd: int) -> str:
    text = os.pread(fd, 300, 0).decode(errors="replace").strip()
    return text or "another process"
