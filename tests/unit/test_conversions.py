"""Conversions derived when a snapshot is read: exact rows, flagged as derived, with counts of what is unused."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from pipeline.conversions import derived_counts, pairs_from_thumbs, thumbs_from_pairs
from pipeline.schema import PAIRS_SCHEMA, UNPAIRED_SCHEMA
from pipeline.shape import measure_shape

T = datetime(2026, 10, 1)


def conv(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def thumbs(*rows: tuple[str, str, bool]) -> pa.Table:
    return pa.Table.from_pylist([
        {"event_id": f"e{i}", "source": "s", "ts": T, "user_id": None, "model_version": "v1",
         "prompt": conv(p), "completion": c, "label": lab} for i, (p, c, lab) in enumerate(rows)
    ], UNPAIRED_SCHEMA)


def pairs(*rows: tuple[str, str, str]) -> pa.Table:
    return pa.Table.from_pylist([
        {"event_id": f"p{i}", "source": "s", "ts": T, "user_id": "u", "model_version": "v1",
         "prompt": conv(p), "chosen": c, "rejected": r} for i, (p, c, r) in enumerate(rows)
    ], PAIRS_SCHEMA)


UNPAIRED = thumbs(
    ("hi", "Hello!", True), ("hi", "Hey.", True), ("hi", "Go away.", False),   # 2 ups x 1 down -> 2 pairs
    ("sky", "Blue.", True), ("sky", "Blue.", False),                          # a tie: no label, no pair
    ("tea", "Yes.", True),                                                    # no opposite answer
    ("cat", "Meow.", False), ("cat", "Meow.", False), ("cat", "Woof.", True), # majority down vs up -> 1 pair
)


def test_pairs_from_thumbs_pair_every_up_answer_with_every_down_answer_of_the_same_prompt():
    got = pairs_from_thumbs(UNPAIRED)
    rows = sorted((r["prompt"][0]["content"], r["chosen"], r["rejected"], r["derived_from"]) for r in got.to_pylist())
    assert rows == [("cat", "Woof.", "Meow.", "thumbs"), ("hi", "Hello!", "Go away.", "thumbs"),
                    ("hi", "Hey.", "Go away.", "thumbs")]
    assert len(set(got.column("event_id").to_pylist())) == 3


def test_thumbs_from_pairs_take_chosen_up_and_rejected_down():
    got = thumbs_from_pairs(pairs(("q", "good", "bad")))
    assert sorted((r["completion"], r["label"], r["derived_from"]) for r in got.to_pylist()) == [
        ("bad", False, "pairs"), ("good", True, "pairs")]


def test_counts_say_what_each_conversion_gives_and_what_it_cannot_use():
    counts = derived_counts(UNPAIRED, pairs(("q", "good", "bad"), ("r", "x", "y")))
    assert (counts.pairs_from_thumbs, counts.thumbs_from_pairs) == (3, 4)
    # answers: hi x3, sky x1 (tied), tea x1, cat x2
    assert (counts.thumbed_answers, counts.tied_answers, counts.answers_without_opposite) == (7, 1, 1)


def test_the_shape_profile_shows_the_derived_counts():
    shape = measure_shape(UNPAIRED, pairs(("q", "good", "bad")), holdout_fraction=0.2)
    assert shape.to_dict()["derived"]["pairs_from_thumbs"] == 3
    assert shape.to_dict()["derived"]["thumbs_from_pairs"] == 2
    assert shape.n_pairs == 1  # derived rows are counted apart, never added to the observed counts
