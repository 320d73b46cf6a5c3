"""The `ratings` shape: thresholds, margins, and shape settings checked by name."""

from __future__ import annotations

import pytest

from alignloop.config import SourceSettings
from alignloop.errors import ConfigError
from tests.unit.shapes.conftest import fixture_rows, write_table

RATINGS_MAPPING = {"rows": {"score": "stars", "user_id": "user"}}
STARS = {"min_score": 1, "max_score": 5, "down_threshold": 2, "up_threshold": 4, "pair_margin": 1}


def _rows(tmp_path):
    rows = [{**r, "stars": str(r["stars"])} for r in fixture_rows("ratings.jsonl")]
    return write_table(tmp_path / "wh.duckdb", "ratings", rows)


def _snapshot_pairs(shape_run) -> list[tuple]:
    _, pairs = shape_run.store.read_snapshot(shape_run.store.snapshot())
    return sorted((r["chosen"], r["rejected"], r["derived_from"], r["user_id"] is not None) for r in pairs.to_pylist())


def test_stars_give_thumbs_past_the_thresholds_and_pairs_past_the_margin_when_read(tmp_path, shape_run):
    result = shape_run.ingest(_rows(tmp_path), "ratings", mapping=RATINGS_MAPPING, shape_options=STARS)
    thumbs = shape_run.rows("SELECT completion, label FROM unpaired ORDER BY completion")
    assert thumbs == [("A prince avenges his father.", True), ("It is a play.", False)]
    # Every usable rated answer is kept as observed, with its score and the margin it was loaded with ...
    scores = shape_run.rows("SELECT completion, score, pair_margin, rank FROM ranks ORDER BY completion")
    assert scores == [("A prince avenges his father.", 5.0, 1.0, None), ("Blue.", 3.0, 1.0, None),
                      ("Danish drama.", 3.0, 1.0, None), ("It is a play.", 2.0, 1.0, None), ("Teal.", 3.5, 1.0, None)]
    # ... and no pair is stored as if observed: a snapshot derives them. 5 vs 2, 5 vs 3 and 3 vs 2 (margin 1);
    # 3.5 vs 3 is under the margin. Only u1 rated both answers of 5 vs 2: that pair keeps the rater.
    assert shape_run.rows("SELECT count(*) FROM pairs") == [(0,)]
    assert _snapshot_pairs(shape_run) == [("A prince avenges his father.", "Danish drama.", "ratings", False),
                                          ("A prince avenges his father.", "It is a play.", "ratings", True),
                                          ("Danish drama.", "It is a play.", "ratings", False)]
    reasons = {r for (r,) in shape_run.rows("SELECT reason FROM quarantine")}
    assert reasons == {"score 'many' is not a number", "score 9 is above shape_options.max_score (5)"}
    assert result.rows_read == {"rows": 7} and result.quarantined == 2
    assert (result.unpaired_added, result.pairs_added, result.ranks_added) == (2, 0, 5)


def test_a_wider_margin_and_thresholds_change_the_rows(tmp_path, shape_run):
    options = {**STARS, "pair_margin": 2.5, "up_threshold": 5, "down_threshold": 1}
    shape_run.ingest(_rows(tmp_path), "ratings", mapping=RATINGS_MAPPING, shape_options=options)
    assert _snapshot_pairs(shape_run) == [("A prince avenges his father.", "It is a play.", "ratings", True)]
    assert shape_run.rows("SELECT completion, label FROM unpaired") == [("A prince avenges his father.", True)]


def test_a_snapshot_keeps_its_rated_pairs_when_the_margin_changes_later(tmp_path, shape_run):
    """Each rated row keeps the margin it was loaded with: a later load under another margin adds its own
    rows' pairs and leaves an earlier snapshot's pairs as they were."""
    shape_run.ingest(_rows(tmp_path), "ratings", mapping=RATINGS_MAPPING, shape_options=STARS)
    before = shape_run.store.snapshot()
    later = [{"id": "r8", "prompt": "Summarise the plot of Hamlet.", "completion": "Revenge, then death.",
              "stars": "4", "user": "u5"}]
    write_table(tmp_path / "wh.duckdb", "ratings", later)
    shape_run.ingest(tmp_path / "wh.duckdb", "ratings", mapping=RATINGS_MAPPING,
                     shape_options={**STARS, "pair_margin": 2})
    _, old_pairs = shape_run.store.read_snapshot(before)
    assert len(old_pairs) == 3
    # r8 (4 stars) pairs with r2 (2 stars) at the larger of the two rows' margins (2): 4 - 2 >= 2;
    # not with r3 (3 stars): 4 - 3 < 2. r1 (5) over r8 (4): 1 < 2, no pair.
    new = sorted((c, r) for c, r, *_ in _snapshot_pairs(shape_run))
    assert new == [("A prince avenges his father.", "Danish drama."), ("A prince avenges his father.", "It is a play."),
                   ("Danish drama.", "It is a play."), ("Revenge, then death.", "It is a play.")]


@pytest.mark.parametrize(("options", "message"), [
    ({"up_threshold": 2, "down_threshold": 3}, r"shape_options\.up_threshold: must be above down_threshold \(3"),
    ({"pair_margin": 0}, r"shape_options\.pair_margin: Input should be greater than 0"),
    ({"min_score": 5, "max_score": 1}, r"shape_options\.max_score: must be above min_score"),
    ({"threshold": 3}, r"shape_options\.threshold: not a setting of the 'ratings' shape"),
])
def test_bad_ratings_settings_name_the_field(options, message):
    with pytest.raises(ConfigError, match=r"sources\[r\]\." + message):
        SourceSettings(name="r", shape="ratings", shape_options=options)


@pytest.mark.parametrize(("shape", "options", "message"), [
    ("langfuse", {"up_threshold": 0, "down_threshold": 0}, r"shape_options\.up_threshold: must be above down_threshold"),
    ("langfuse", {"score_name": ["x"]}, r"shape_options\.score_name: not a setting of the 'langfuse' shape"),
    ("transcripts", {"margin": 1}, r"shape_options\.margin: not a setting of the 'transcripts' shape \(its settings: no"),
])
def test_other_shapes_settings_are_checked_by_name(shape, options, message):
    with pytest.raises(ConfigError, match=r"sources\[s\]\." + message):
        SourceSettings(name="s", shape=shape, shape_options=options)
