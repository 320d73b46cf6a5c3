"""Error kinds that decide what happens next.

Retries key off these classes: a TransientError may succeed if tried again (a network blip, a locked
file), a TerminalError will not (bad credentials, bad data, a bad setting). Every message says what
went wrong, where, and how to fix it, and never carries a secret.
"""

from __future__ import annotations

import contextlib
import errno
import re
from collections.abc import Iterator


class AlignloopError(Exception):
    """Base of every error alignloop raises on purpose."""

    transient: bool = False


class TransientError(AlignloopError):
    """Worth retrying: the same call may succeed later."""

    transient = True


class TerminalError(AlignloopError):
    """Not worth retrying: something must change first (a setting, the data, a permission)."""


class ConfigError(TerminalError):
    """A setting is wrong. The message names the field and the fix."""


class DataError(TerminalError):
    """The data cannot be used as it is (for example: too few rows for the chosen method)."""


class DiskFullError(TerminalError):
    """A write failed for want of room: the disk is full, or a file reached its size limit."""


_NO_ROOM_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
# How DuckDB, SQLite and the OS word it when the errno does not travel with the exception.
_NO_ROOM_TEXT = re.compile(r"No space left on device|File too large|Disk quota exceeded|database or disk is full")


def disk_full(exc: BaseException) -> DiskFullError | None:
    """The DiskFullError behind exc (itself or anything in its chain of causes), if a write found no room.
    A storage library may report a later symptom ("cannot rollback - no transaction is active") on top."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current)
        if (isinstance(current, OSError) and current.errno in _NO_ROOM_ERRNOS) or _NO_ROOM_TEXT.search(text):
            cause = text.splitlines()[0] if text else type(current).__name__
            return DiskFullError(f"no room to write ({cause}); free space on the disk that holds the workdir, "
                                 "the store and MLflow (or raise the file size limit, `ulimit -f`), then run again")
        current = current.__cause__ or current.__context__
    return None


@contextlib.contextmanager
def disk_full_is_terminal() -> Iterator[None]:
    """Re-raise a failed write that found no room as one DiskFullError naming the cause and the fix."""
    try:
        yield
    except AlignloopError:
        raise
    except Exception as e:
        found = disk_full(e)
        if found is None:
            raise
        raise found from None
