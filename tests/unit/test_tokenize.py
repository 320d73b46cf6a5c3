"""The shared truncation rule and the training-row preparation built on it (no model needed)."""

from __future__ import annotations

import pytest

from alignloop.tokenize import TruncationCount, choose_max_length, fit_to_length, truncate_pair
from alignloop.training.data import fit_rows, padded_tokens, training_order


@pytest.mark.parametrize(
    ("prompt", "answer", "max_length", "expected"),
    [
        (10, 5, 20, (0, 5)),      # fits: nothing removed
        (10, 5, 15, (0, 5)),      # exactly fits
        (10, 5, 12, (3, 5)),      # oldest 3 prompt tokens go, the answer stays whole
        (30, 5, 12, (23, 5)),     # a prompt longer than max_length alone is trimmed, not dropped
        (10, 20, 12, (9, 11)),    # one prompt token is kept; the answer's end is cut
        (1, 20, 8, (0, 7)),
    ],
)
def test_fit_drops_oldest_prompt_tokens_first_and_keeps_one(prompt, answer, max_length, expected):
    drop, keep = fit_to_length(prompt, answer, max_length)
    assert (drop, keep) == expected
    assert prompt - drop + keep <= max_length


def test_truncate_pair_trims_the_shared_prompt_for_the_longer_answer():
    prompt, (chosen, rejected) = truncate_pair(list(range(10)), [[100, 101], [200, 201, 202, 203]], 8)
    assert prompt == [6, 7, 8, 9]             # newest prompt tokens kept
    assert chosen == [100, 101] and rejected == [200, 201, 202, 203]
    assert len(prompt) + len(rejected) == 8


def test_fit_rows_keeps_every_row_and_counts_what_it_cut():
    rows = [
        {"prompt_ids": list(range(4)), "chosen_ids": [1, 2], "rejected_ids": [3]},          # fits
        {"prompt_ids": list(range(40)), "chosen_ids": [1, 2], "rejected_ids": [3, 4, 5]},   # prompt alone > 16
        {"prompt_ids": [7], "chosen_ids": list(range(30)), "rejected_ids": [1]},            # answer too long
    ]
    fitted = fit_rows(rows, max_length=16, cap=1024)
    assert len(fitted.rows) == 3
    assert fitted.rows[1]["prompt_ids"] == list(range(27, 40))          # 13 newest + 3 answer tokens = 16
    assert fitted.rows[2]["chosen_ids"] == list(range(15))
    t = fitted.truncation
    assert (t.rows, t.rows_truncated, t.rows_prompt_trimmed, t.rows_answer_cut, t.rows_dropped) == (3, 2, 1, 1, 0)
    assert (t.prompt_tokens_removed, t.answer_tokens_removed) == (27, 15)
    assert "2 of 3 training rows truncated" in t.describe()
    assert all(len(r["prompt_ids"]) + max(len(r["chosen_ids"]), len(r["rejected_ids"])) <= 16 for r in fitted.rows)


def test_unset_max_length_is_chosen_from_the_measured_lengths_within_the_cap():
    lengths = [20] * 90 + [70] * 8 + [500, 900]
    assert choose_max_length(lengths) == 80                 # 95th percentile 70, rounded up to 16s
    assert choose_max_length(lengths, cap=64) == 64
    assert choose_max_length([3, 4]) == 32                  # floor
    rows = [{"prompt_ids": [0] * (n - 1), "completion_ids": [1], "label": True} for n in lengths]
    fitted = fit_rows(rows, max_length=None, cap=1024)
    assert fitted.max_length == 80 and "95th percentile" in fitted.max_length_reason
    assert fitted.truncation.rows_prompt_trimmed == 2


def test_truncation_count_describes_a_clean_set():
    assert TruncationCount().add(0, 0).describe() == "all 1 training rows fit max_length: none truncated, none dropped"


def test_training_order_is_seeded_epochs_covering_every_row():
    lengths = [5, 50, 6, 51, 7, 52, 8, 53, 9, 54]
    order = training_order(lengths, total=25, batch_size=5, seed=3)
    assert len(order) == 25
    assert order == training_order(lengths, total=25, batch_size=5, seed=3)
    assert order != training_order(lengths, total=25, batch_size=5, seed=4)
    plain = training_order(lengths, total=20, batch_size=5, seed=3, group_by_length=False)
    assert sorted(plain[:10]) == list(range(10)) and sorted(plain[10:20]) == list(range(10))


def test_length_grouped_batches_compute_fewer_pad_tokens_than_shuffled_ones():
    import random

    rng = random.Random(0)
    rows = [{"prompt_ids": [0] * rng.randint(5, 200), "chosen_ids": [1] * 5, "rejected_ids": [2] * 9} for _ in range(64)]
    lengths = [len(r["prompt_ids"]) + 9 for r in rows]
    grouped = training_order(lengths, 64, 4, seed=0)
    shuffled = training_order(lengths, 64, 4, seed=0, group_by_length=False)
    real_g, computed_g = padded_tokens(rows, grouped, 4, ("chosen_ids", "rejected_ids"))
    real_s, computed_s = padded_tokens(rows, shuffled, 4, ("chosen_ids", "rejected_ids"))
    assert real_g == real_s                                   # the same rows, once each
    assert sorted(grouped) == sorted(shuffled) == list(range(64))
    assert (computed_g - real_g) < 0.25 * (computed_s - real_s)
