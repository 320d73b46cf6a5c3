"""The `ratings` and `corrections` shapes: thresholds, margins, edits preferred, settings checked by name."""

from __future__ import annotations

import pytest

from pipeline.config import SourceSettings
from pipeline.errors import ConfigError
from tests.unit.shapes.conftest import fixture_rows, write_table

RATINGS_MAPPING = {"rows": {"score": "stars", "user_id": "user"}}
STARS = {"min_score": 1, "max_score": 5, "down_threshold": 2, "up_threshold": 4, "pair_margin": 1}


def _rows(tmp_path):
    rows = [{**r, "stars": str(r["stars"])} for r in fixture_rows("ratings.jsonl")]
    return write_table(tmp_path / "wh.duckdb", "ratings", rows)


def test_stars_give_thumbs_past_the_thresholds_and_pairs_past_the_margin(tmp_path, shape_run):
    result = shape_run.ingest(_rows(tmp_path), "ratings", mapping=RATINGS_MAPPING, shape_options=STARS)
    thumbs = shape_run.rows("SELECT completion, label FROM unpaired ORDER BY completion")
    assert thumbs == [("A prince avenges his father.", True), ("It is a play.", False)]
    pairs = shape_run.rows("SELECT chosen, rejected FROM pairs ORDER BY chosen, rejected")
    # 5 vs 2 and 5 vs 3 and 3 vs 2 (margin 1); 3.5 vs 3 is under the margin.
    assert pairs == [("A prince avenges his father.", "Danish drama."),
                     ("A prince avenges his father.", "It is a play."), ("Danish drama.", "It is a play.")]
    reasons = {r for (r,) in shape_run.rows("SELECT reason FROM quarantine")}
    assert reasons == {
        "score 3.0 is between the thresholds and no other answer to the prompt differs by the pair margin",
        "score 3.5 is between the thresholds and no other answer to the prompt differs by the pair margin",
        "score 'many' is not a number",
        "score 9 is above shape_options.max_score (5)",
    }
    assert result.rows_read == {"rows": 7} and result.quarantined == 4


def test_a_wider_margin_and_thresholds_change_the_rows(tmp_path, shape_run):
    options = {**STARS, "pair_margin": 2.5, "up_threshold": 5, "down_threshold": 1}
    shape_run.ingest(_rows(tmp_path), "ratings", mapping=RATINGS_MAPPING, shape_options=options)
    assert shape_run.rows("SELECT chosen, rejected FROM pairs") == [("A prince avenges his father.", "It is a play.")]
    assert shape_run.rows("SELECT completion, label FROM unpaired") == [("A prince avenges his father.", True)]


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


def test_corrected_answer_is_preferred_over_the_original(tmp_path, shape_run):
    wh = write_table(tmp_path / "wh.duckdb", "corrections", fixture_rows("corrections.jsonl"))
    result = shape_run.ingest(wh, "corrections", mapping={"rows": {"user_id": "editor"}})
    assert shape_run.rows("SELECT chosen, rejected FROM pairs ORDER BY chosen") == [("Canberra.", "Sydney."),
                                                                                    ("Cat.", "Chat.")]
    assert shape_run.reasons() == {"corrected and original are identical": 1, "corrected is empty": 1}
    assert (result.pairs_added, result.quarantined) == (2, 2)
    assert shape_run.rows("SELECT count(DISTINCT user_id) FROM pairs") == [(2,)]
