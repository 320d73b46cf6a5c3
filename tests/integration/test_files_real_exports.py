"""Real exports nobody here wrote load through the files connector with the default settings (PII scrubbing
on): every row of Anthropic's HH helpfulness transcripts is counted exactly once, as a pair or in quarantine."""

from __future__ import annotations

from pathlib import Path

import pytest

from alignloop import stages
from alignloop.config import settings_from_dict
from alignloop.ingest.store import FeedbackStore

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
HH = DATA / "hh-helpful"
# rows in each file (the data's README), and how many give a pair with the shapes' rules.
EXPECTED = {"base": (2354, 2339), "online": (1137, 1129), "rejection_sampled": (2749, 2714)}
FILES = {"base": "helpful-base", "online": "helpful-online", "rejection_sampled": "helpful-rejection-sampled"}


@pytest.fixture(scope="module")
def hh_store(tmp_path_factory):
    if not HH.is_dir():
        pytest.fail(f"{HH} is missing: the real data sits beside the repository as ../shared/data")
    workdir = tmp_path_factory.mktemp("hh")
    settings = settings_from_dict({
        "target": "t", "base_model": {"tiny": True},
        "sources": [{"name": name, "connector": "files", "options": {"path": str(HH / f"{file}.jsonl.gz")},
                     "shape": "transcripts"} for name, file in FILES.items()],
    }, base_dir=workdir)
    assert settings.ingest.scrub_pii
    results = {r.source: r for r in stages.ingest(settings)}
    with FeedbackStore(settings.store_path) as store:
        yield results, store


def test_every_transcript_is_a_pair_or_quarantined_once(hh_store):
    results, store = hh_store
    for name, (rows, pairs) in EXPECTED.items():
        r = results[name]
        assert (r.rows_read["rows"], r.pairs_added, r.quarantined) == (rows, pairs, rows - pairs), name
    counted = dict(store.con.execute(
        "SELECT source, count(*) FROM (SELECT source FROM pairs UNION ALL SELECT source FROM quarantine) GROUP BY ALL"
    ).fetchall())
    assert counted == {name: rows for name, (rows, _) in EXPECTED.items()}


def test_transcripts_whose_sides_are_equal_are_quarantined_as_identical(hh_store):
    """36 rows of the three files hold the same transcript as chosen and rejected: no preference, no pair."""
    _, store = hh_store
    assert store.con.execute("SELECT count(*) FROM quarantine WHERE reason = "
                             "'chosen and rejected final answers are identical'").fetchone() == (36,)


def test_addresses_after_newlines_are_scrubbed_and_nothing_else_is_lost(hh_store):
    _, store = hh_store
    text = store.con.execute("SELECT string_agg(prompt::VARCHAR || chosen || rejected, ' ') FROM pairs").fetchone()[0]
    text += store.con.execute("SELECT string_agg(payload::VARCHAR, ' ') FROM quarantine").fetchone()[0]
    assert "Help@Personal.Assistant.AI" not in text and "info@intelligents.ai" not in text
    assert "@gmail.com" not in text and "[EMAIL]" in text
