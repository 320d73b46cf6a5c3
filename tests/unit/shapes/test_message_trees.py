"""The `message_trees` shape: ranked siblings -> ranks (pairs derived when a snapshot is read), net emoji votes
-> thumbs, every message accounted for."""

from __future__ import annotations

import json

import pytest

from alignloop.shapes.message_trees import emoji_votes
from tests.unit.shapes.conftest import fixture_rows, write_table

Q = {"role": "user", "content": "What is a good name for a cat?"}
# Messages of message_trees_messages.jsonl that end in no canonical row, and why.
UNUSED = {
    "a9": "text is empty",
    "a5": 'no preference signal: no differently ranked sibling and no net "+1"/"-1" vote',
    "m3": "no reply below it carries a rank or a net vote",
    "m4": "deleted in the export",
    "a6": "an earlier message in its thread cannot be used",
    "a7": "an earlier message in its thread cannot be used",
    "a8": "no path to a root message: parent gone or one of its ancestors is not in the source",
}


def test_net_votes_count_only_plus_and_minus_one():
    assert emoji_votes({"+1": 3, "-1": 1, "_skip_reply": 5, "red_flag": 2}) == (3, 1, None)
    assert emoji_votes('{"-1": 2}') == (0, 2, None)
    assert emoji_votes([{"name": "+1", "count": 4}]) == (4, 0, None)
    assert emoji_votes([("+1", 2), ("-1", 5)]) == (2, 5, None)  # an Arrow map
    assert emoji_votes(None) == (0, 0, None)
    assert emoji_votes({"+1": "many"})[2] == "emojis['+1'] 'many' is not a count"


def snapshot_pairs(shape_run) -> list[tuple]:
    """(prompt, chosen, rejected, derived_from) of the pairs a snapshot of the store reads, sorted."""
    _, pairs = shape_run.store.read_snapshot(shape_run.store.snapshot())
    return sorted((r["prompt"], r["chosen"], r["rejected"], r["derived_from"]) for r in pairs.to_pylist())


def _check_t1(shape_run):
    # The ranks are stored as observed (a9, rank 3, has no text); no pair is stored as if observed.
    assert shape_run.rows("SELECT answer_id, completion, rank, group_id, prompt FROM ranks ORDER BY rank") == [
        ("a1", "Whiskers.", 0, "m1", [Q]), ("a2", "Dog.", 1, "m1", [Q]), ("a3", "Cat.", 2, "m1", [Q])]
    assert shape_run.rows("SELECT count(*) FROM pairs") == [(0,)]
    # A snapshot reads every better-ranked vs worse-ranked sibling, marked as derived from ranks.
    assert snapshot_pairs(shape_run) == [([Q], "Dog.", "Cat.", "ranks"), ([Q], "Whiskers.", "Cat.", "ranks"),
                                         ([Q], "Whiskers.", "Dog.", "ranks")]
    thumbs = shape_run.rows("SELECT len(prompt), completion, label FROM unpaired ORDER BY completion")
    # a2's 1-1 tie gives none; a4 answers the thread m1 > a3 > m2.
    assert thumbs == [(3, "Because it is one.", True), (1, "Cat.", False), (1, "Whiskers.", True)]


def test_flat_export_gives_pairs_thumbs_and_a_reason_for_every_other_message(tmp_path, shape_run):
    rows = fixture_rows("message_trees_messages.jsonl")
    wh = write_table(tmp_path / "wh.duckdb", "message_trees", rows)
    result = shape_run.ingest(wh, "message_trees")
    _check_t1(shape_run)
    quarantined = {json.loads(p)["message_id"]: r for r, p in shape_run.rows("SELECT reason, payload FROM quarantine")}
    assert quarantined == UNUSED
    assert (result.rows_read, result.ranks_added, result.pairs_added, result.unpaired_added, result.quarantined) == (
        {"rows": 13}, 3, 0, 3, 7)
    # Observed times come from created_date.
    assert shape_run.rows("SELECT count(*) FROM raw_message_trees WHERE NOT ts_observed") == [(0,)]
    # A second run over the same export adds nothing.
    again = shape_run.ingest(wh, "message_trees")
    assert (again.ranks_added, again.pairs_added, again.unpaired_added, again.quarantined) == (0, 0, 0, 0)


@pytest.mark.parametrize("as_json_text", [False, True])
def test_nested_export_gives_the_same_rows_as_the_flat_one(tmp_path, shape_run, as_json_text):
    trees = fixture_rows("message_trees_trees.jsonl")
    if as_json_text:
        trees = [{**t, "prompt": json.dumps(t["prompt"])} for t in trees]
    wh = write_table(tmp_path / "wh.duckdb", "message_trees", trees)
    result = shape_run.ingest(wh, "message_trees")
    _check_t1(shape_run)
    assert result.rows_read == {"rows": 2} and result.raw_added == {"rows": 9}
    assert {r for (r,) in shape_run.rows("SELECT reason FROM quarantine")} == {UNUSED["a9"], UNUSED["a5"], UNUSED["m3"]}
    assert result.quarantined == 3


def test_flat_export_without_text_column_names_the_mapping(tmp_path, shape_run):
    from alignloop.errors import TerminalError

    rows = [{k: v for k, v in r.items() if k != "text"} for r in fixture_rows("message_trees_messages.jsonl")]
    wh = write_table(tmp_path / "wh.duckdb", "message_trees", rows)
    with pytest.raises(TerminalError, match=r"no column 'text'.*mapping\.rows"):
        shape_run.ingest(wh, "message_trees")


def test_a_mapped_created_date_is_the_cursor(tmp_path, shape_run):
    from datetime import datetime

    wh = write_table(tmp_path / "wh.duckdb", "message_trees", fixture_rows("message_trees_messages.jsonl"))
    shape_run.ingest(wh, "message_trees", mapping={"rows": {"created_date": "created_date"}})
    assert datetime.fromisoformat(shape_run.store.cursor_position("src", "rows").value) == datetime(2023, 2, 2, 10, 2)


def test_a_reply_that_failed_review_is_quarantined_and_gives_no_pair(tmp_path, shape_run):
    rows = [{**r, "review_result": r["message_id"] != "a2"} for r in fixture_rows("message_trees_messages.jsonl")]
    wh = write_table(tmp_path / "wh.duckdb", "message_trees", rows)
    shape_run.ingest(wh, "message_trees")
    assert [(c, r) for _, c, r, _ in snapshot_pairs(shape_run)] == [("Whiskers.", "Cat.")]
    assert "failed review in the export (review_result false)" in shape_run.reasons()


@pytest.mark.parametrize("fix, ranks_after, pairs_after", [
    # a2 re-ranked last: its old rank goes, and the group's pairs follow the new ranks.
    ({"rank": 3}, [("a1", 0), ("a3", 2), ("a2", 3)], [("Cat.", "Dog."), ("Whiskers.", "Cat."), ("Whiskers.", "Dog.")]),
    # a2 deleted upstream: quarantined; its siblings still compare with each other.
    ({"deleted": True}, [("a1", 0), ("a3", 2)], [("Whiskers.", "Cat.")]),
])
def test_a_ranked_reply_fixed_upstream_rejudges_the_ranks_of_its_group(tmp_path, shape_run, fix, ranks_after,
                                                                        pairs_after):
    rows = fixture_rows("message_trees_messages.jsonl")
    wh = write_table(tmp_path / "wh.duckdb", "message_trees", rows)
    shape_run.ingest(wh, "message_trees")
    fixed = [{**r, **fix, "created_date": "2023-02-03T00:00:00.000000+00:00"} if r["message_id"] == "a2" else r
             for r in rows]
    write_table(wh, "message_trees", fixed)
    assert shape_run.ingest(wh, "message_trees").replaced == 1
    assert shape_run.rows("SELECT answer_id, rank FROM ranks ORDER BY rank") == ranks_after
    assert sorted((c, r) for _, c, r, _ in snapshot_pairs(shape_run)) == pairs_after
    in_quarantine = {json.loads(p)["message_id"] for (p,) in shape_run.rows("SELECT payload FROM quarantine")}
    assert ("a2" in in_quarantine) == ("deleted" in fix)


def test_a_rank_that_arrives_later_is_in_the_next_snapshot_and_not_in_the_earlier_one(tmp_path, shape_run):
    rows = fixture_rows("message_trees_messages.jsonl")
    wh = write_table(tmp_path / "wh.duckdb", "message_trees", [r for r in rows if r["message_id"] != "a3"])
    shape_run.ingest(wh, "message_trees")
    earlier = shape_run.store.snapshot()
    write_table(wh, "message_trees", rows)
    assert shape_run.ingest(wh, "message_trees").ranks_added == 1
    later = shape_run.store.snapshot()
    assert later.snapshot_id != earlier.snapshot_id and (earlier.n_pairs, later.n_pairs) == (1, 3)
    assert shape_run.store.read_snapshot(earlier)[1].column("chosen").to_pylist() == ["Whiskers."]


def _chosen_rejected(pairs) -> list[tuple[str, str]]:
    return sorted((r["chosen"], r["rejected"]) for r in pairs.select(["chosen", "rejected"]).to_pylist())


def test_an_earlier_snapshot_keeps_the_pairs_of_ranks_replaced_since(tmp_path, shape_run):
    rows = fixture_rows("message_trees_messages.jsonl")
    wh = write_table(tmp_path / "wh.duckdb", "message_trees", rows)
    shape_run.ingest(wh, "message_trees")
    earlier = shape_run.store.snapshot()
    before = _chosen_rejected(shape_run.store.read_snapshot(earlier)[1])
    write_table(wh, "message_trees", [{**r, "rank": 3, "created_date": "2023-02-03T00:00:00.000000+00:00"}
                                      if r["message_id"] == "a2" else r for r in rows])
    assert shape_run.ingest(wh, "message_trees").replaced == 1
    later = shape_run.store.snapshot()
    assert later.snapshot_id != earlier.snapshot_id
    again = shape_run.store.read_snapshot(shape_run.store.get_snapshot(earlier.snapshot_id))[1]
    assert _chosen_rejected(again) == before
    assert shape_run.store.snapshot_identity(earlier.high_water_batch)[0] == earlier.snapshot_id


def test_pairs_derived_from_ranks_reach_the_train_and_holdout_split(tmp_path, shape_run):
    """Training and evaluation read a snapshot split in SQL; the rank pairs are part of it, as in the profile."""
    wh = write_table(tmp_path / "wh.duckdb", "message_trees", fixture_rows("message_trees_messages.jsonl"))
    shape_run.ingest(wh, "message_trees")
    snap = shape_run.store.snapshot()
    for fraction in (0.0, 1.0):  # every prompt on the training side, then every prompt held out
        split = shape_run.store.read_split(snap, fraction)
        side = split.holdout_pairs if fraction == 1.0 else split.train_pairs
        got = _chosen_rejected(side)
        assert got == sorted((c, r) for _, c, r, _ in snapshot_pairs(shape_run)) and len(got) == snap.n_pairs == 3
