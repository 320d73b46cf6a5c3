"""Property: however the rows arrive (split into random windows, repeated, late, feedback before its
generation), the store ends with exactly the set of unique events."""

from __future__ import annotations

import hashlib
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alignloop.config import IngestSettings
from alignloop.ingest.store import FeedbackStore
from tests.unit.test_loading import at, chat, source, warehouse

NOW = datetime(2026, 11, 1)


@st.composite
def deliveries(draw):
    """Unique events, and the order in which the warehouse receives their rows."""
    n = draw(st.integers(1, 10))
    windows = draw(st.integers(1, 4))
    events = []
    for i in range(n):
        # Within 20 hours: any lateness stays inside the default look-back of a day.
        ts = draw(st.integers(0, 1200))
        events.append({
            "gen": (f"r{i}", at(ts), f"u{i % 3}", "v1", chat(f"Question {i}?"), f"Answer {i}."),
            "fb": (f"f{i}", f"r{i}", at(ts + draw(st.integers(0, 60))), f"u{i % 3}", "thumb",
                   draw(st.sampled_from(["up", "down"])), None),
        })
    arrivals: list[tuple[list, list]] = [([], []) for _ in range(windows)]
    for e in events:
        for kind, slot in (("gen", 0), ("fb", 1)):
            w = draw(st.integers(0, windows - 1))
            arrivals[w][slot].append(e[kind])
            if draw(st.booleans()) and draw(st.booleans()):  # repeated in a later batch, unchanged
                arrivals[draw(st.integers(w, windows - 1))][slot].append(e[kind])
    return events, arrivals


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries())
def test_store_ends_with_exactly_the_unique_events(delivery):
    events, arrivals = delivery
    with tempfile.TemporaryDirectory() as tmp:
        wh = Path(tmp) / "wh.duckdb"
        warehouse(wh, [], [])
        src, conn = source(wh)
        with FeedbackStore(Path(tmp) / "s.duckdb") as store:
            for gens, fbs in arrivals:
                warehouse(wh, gens, fbs)
                store.ingest(src, conn, settings=IngestSettings(), now=NOW)
            # and once more with nothing new: still nothing added
            store.ingest(src, conn, settings=IngestSettings(), now=NOW + timedelta(minutes=1))
            got = set(store.con.execute("SELECT event_id, completion, label FROM unpaired").fetchall())
            counts = store.counts()
    expected = {
        (hashlib.md5(f"prod:{e['fb'][0]}".encode()).hexdigest(), e["gen"][5], e["fb"][5] == "up") for e in events
    }
    assert got == expected
    assert counts["unpaired"] == len(events) and counts["quarantine"] == 0
    assert counts["raw_events_generations"] == len(events) and counts["raw_events_feedback"] == len(events)
