"""The ingest bounds glibc's retention of freed memory, so the process stays near ingest.memory_limit."""

from __future__ import annotations

import platform
import sys

import pytest

from alignloop import memory


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_glibc_trim_threshold_is_set_once(monkeypatch):
    monkeypatch.setattr(memory, "_done", False)
    calls = []
    real = memory.ctypes.CDLL

    def spy(name):
        lib = real(name)
        mallopt = lib.mallopt

        def recorded(option, value):
            calls.append((option, value))
            return mallopt(option, value)
        recorded.argtypes = None
        lib.mallopt = recorded
        return lib

    monkeypatch.setattr(memory.ctypes, "CDLL", spy)
    assert memory.bound_allocator_retention() is True
    assert memory.bound_allocator_retention() is True
    assert calls == [(memory.M_TRIM_THRESHOLD, memory.TRIM_THRESHOLD)]  # glibc accepted it, once


def test_an_ingest_sets_it(tmp_path, monkeypatch):
    from alignloop.ingest.store import FeedbackStore
    from tests.unit.test_loading import source, warehouse

    called = []
    monkeypatch.setattr("alignloop.ingest.store.bound_allocator_retention", lambda: called.append(1) or True)
    src, conn = source(warehouse(tmp_path / "wh.duckdb", [], []))
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        store.ingest(src, conn)
    assert called == [1]
