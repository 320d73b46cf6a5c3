"""Conversions derived when a snapshot is read: exact rows, flagged as derived, with counts of what is unused."""

from __future__ import annotations

import hashlib
import random
from datetime import datetime, timedelta

import pyarrow as pa

from alignloop.conversions import (
    derived_counts,
    pairs_from_ranks,
    pairs_from_thumbs,
    thumbs_from_pairs,
    with_pairs_from_ranks,
)
from alignloop.schema import PAIRS_SCHEMA, RANKS_SCHEMA, UNPAIRED_SCHEMA, is_holdout
from alignloop.profile import measure_profile

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


def random_thumbs(seed: int, n: int = 400) -> pa.Table:
    """Thumbs on 40 prompts x 4 answers with repeats, ties and one-sided prompts."""
    rng = random.Random(seed)
    return thumbs(*((f"p{rng.randrange(40)}", f"a{rng.randrange(4)}", rng.random() < 0.5) for _ in range(n)))


def test_counts_are_the_rows_the_conversion_builds_and_the_labels_it_uses():
    # The counts group the answers on their own: a majority rule that drifted from the one
    # derived_answer_labels.sql applies would count pairs that reading the snapshot never builds.
    for seed in range(5):
        table = random_thumbs(seed)
        counts = derived_counts(table, pairs())
        built = pairs_from_thumbs(table)
        assert counts.pairs_from_thumbs == built.num_rows > 0
        votes: dict[tuple[str, str], int] = {}
        for r in table.to_pylist():
            key = (r["prompt"][0]["content"], r["completion"])
            votes[key] = votes.get(key, 0) + (1 if r["label"] else -1)
        assert (counts.thumbed_answers, counts.tied_answers) == (len(votes), sum(v == 0 for v in votes.values()))


def test_the_profile_counts_pairable_prompts_of_the_training_side_only():
    table = random_thumbs(7)
    score: dict[tuple[str, str], int] = {}   # (training prompt, answer) -> ups minus downs
    for r in table.to_pylist():
        if not is_holdout(r["prompt"], 0.5):
            key = (r["prompt"][0]["content"], r["completion"])
            score[key] = score.get(key, 0) + (1 if r["label"] else -1)
    sides: dict[str, tuple[int, int]] = {}   # training prompt -> (up answers, down answers)
    for (prompt, _), v in score.items():
        up, down = sides.get(prompt, (0, 0))
        sides[prompt] = (up + (v > 0), down + (v < 0))
    pairable = sum(1 for up, down in sides.values() if up and down)
    pairs_given = sum(up * down for up, down in sides.values())
    shape = measure_profile(table, pairs(), holdout_fraction=0.5)
    assert (shape.pairable_prompts_train, shape.pairs_from_thumbs_train) == (pairable, pairs_given)
    # a split that held out nothing would give the whole table's counts: these are fewer
    assert 0 < pairs_given < shape.derived["pairs_from_thumbs"]


def test_the_shape_profile_shows_the_derived_counts():
    shape = measure_profile(UNPAIRED, pairs(("q", "good", "bad")), holdout_fraction=0.2)
    assert shape.to_dict()["derived"]["pairs_from_thumbs"] == 3
    assert shape.to_dict()["derived"]["thumbs_from_pairs"] == 2
    assert shape.n_pairs == 1  # derived rows are counted apart, never added to the observed counts


def ranks(*rows: tuple[str, str, str, str, int, int, bool]) -> pa.Table:
    """(source, group, answer id, answer, rank, minutes after T, ts_observed) per ranked answer."""
    return pa.Table.from_pylist([
        {"event_id": f"k{i}", "source": src, "ts": T + timedelta(minutes=m), "user_id": None, "model_version": "v1",
         "prompt": conv(f"prompt of {group}"), "completion": c, "rank": rank, "group_id": group, "answer_id": aid,
         "ts_observed": seen} for i, (src, group, aid, c, rank, m, seen) in enumerate(rows)
    ], RANKS_SCHEMA)


RANKS = ranks(
    ("s", "g1", "a1", "Best.", 0, 1, True), ("s", "g1", "a2", "Good.", 1, 2, True),
    ("s", "g1", "a3", "Bad.", 2, 3, False),                                      # 0 > 1 > 2: three pairs
    ("s", "g2", "b1", "Same.", 0, 1, True), ("s", "g2", "b2", "Same.", 1, 2, True),  # one text: no preference
    ("s", "g2", "b3", "Tied.", 1, 3, True),                                       # b2 = b3 in rank: only b1 > b3
    ("t", "g1", "c1", "Other source.", 5, 1, True),                                # same group name, other source
)


def test_pairs_from_ranks_prefer_every_better_ranked_answer_of_a_group_over_every_worse_ranked_one():
    got = pairs_from_ranks(RANKS).to_pylist()
    assert sorted((r["prompt"][0]["content"], r["chosen"], r["rejected"], r["derived_from"]) for r in got) == [
        ("prompt of g1", "Best.", "Bad.", "ranks"), ("prompt of g1", "Best.", "Good.", "ranks"),
        ("prompt of g1", "Good.", "Bad.", "ranks"), ("prompt of g2", "Same.", "Tied.", "ranks")]
    by_answers = {(r["chosen"], r["rejected"]): r for r in got}
    # The id such a pair had when rankings were stored as pairs; the later time; observed only if both were.
    assert by_answers["Best.", "Bad."]["event_id"] == hashlib.md5(b"s:pair:a1>a3").hexdigest()
    assert (by_answers["Best.", "Good."]["ts"], by_answers["Best.", "Good."]["ts_observed"]) == (
        T + timedelta(minutes=2), True)
    assert by_answers["Good.", "Bad."]["ts_observed"] is False


def test_a_snapshot_reads_observed_pairs_and_pairs_from_ranks_marked_apart_and_the_profile_counts_them():
    observed = pairs(("q", "good", "bad"))
    both = with_pairs_from_ranks(observed, RANKS)
    assert both.column("derived_from").to_pylist() == [None, "ranks", "ranks", "ranks", "ranks"]  # oldest first
    assert with_pairs_from_ranks(observed, RANKS.slice(0, 0)).column("derived_from").to_pylist() == [None]
    assert derived_counts(UNPAIRED, both).pairs_from_ranks == 4
    shape = measure_profile(UNPAIRED, both, holdout_fraction=0.2)
    # Pairs a ranking states are trained on like observed ones; the profile says how many came from ranks.
    assert (shape.n_pairs, shape.to_dict()["derived"]["pairs_from_ranks"]) == (5, 4)


def test_derived_pairs_from_thumbs_are_observed_in_time_only_when_both_answers_were():
    rows = thumbs(("hi", "Hello!", True), ("hi", "Go away.", False)).to_pylist()
    rows[1]["ts_observed"], rows[0]["ts_observed"] = False, True
    [pair] = pairs_from_thumbs(pa.Table.from_pylist(rows, UNPAIRED_SCHEMA)).to_pylist()
    assert pair["ts_observed"] is False
    rows[1]["ts_observed"] = True
    [pair] = pairs_from_thumbs(pa.Table.from_pylist(rows, UNPAIRED_SCHEMA)).to_pylist()
    assert pair["ts_observed"] is True
