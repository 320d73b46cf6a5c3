"""Keep the process's resident memory near what DuckDB is allowed (`ingest.memory_limit`).

glibc's malloc keeps freed memory for reuse, and after a large free it raises the size below which it
keeps it (its trim and mmap thresholds adapt upward). Staging millions of rows through DuckDB's string
functions frees and allocates gigabytes in such chunks, so the process grew far past DuckDB's own
limit without using the memory. A fixed trim threshold makes glibc hand memory back once more than that
lies free at the top of its heap, and stops the thresholds adapting.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1   # malloc.h
TRIM_THRESHOLD = 128 * 1024 * 1024

_done = False


def bound_allocator_retention() -> bool:
    """Set glibc's trim threshold (once per process); False where the C library is not glibc."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    _done = bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if not _done:
        log.debug("mallopt(M_TRIM_THRESHOLD) refused; resident memory may exceed ingest.memory_limit")
    return _done
