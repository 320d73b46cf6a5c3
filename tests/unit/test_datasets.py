"""Splits and datasets: prompts never straddle train and holdout; held-out pairs are majority-voted."""

from __future__ import annotations

import pytest

from alignloop.datasets import holdout_eval_pairs, preference_dataset, split_snapshot, unpaired_dataset
from alignloop.schema import is_holdout, prompt_key
from tests.unit.test_planner import pairs_table, thumbs_table


def test_split_never_shares_a_prompt():
    split = split_snapshot(thumbs_table(200, 200), pairs_table(400), holdout_fraction=0.3)
    train = {prompt_key(r["prompt"]) for r in split.train_pairs + split.train_unpaired}
    held = {prompt_key(r["prompt"]) for r in split.holdout_pairs + split.holdout_unpaired}
    assert train and held and not train & held


def test_split_is_stable_and_near_the_fraction():
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(4000)]
    share = sum(is_holdout(p, 0.2) for p in prompts) / len(prompts)
    assert 0.17 < share < 0.23
    assert [is_holdout(p, 0.2) for p in prompts[:50]] == [is_holdout(p, 0.2) for p in prompts[:50]]


def test_max_train_examples_keeps_the_newest_rows():
    split = split_snapshot(thumbs_table(0, 0), pairs_table(400), 0.2, max_train_examples=10)
    assert len(split.train_pairs) == 10
    all_train = split_snapshot(thumbs_table(0, 0), pairs_table(400), 0.2).train_pairs
    assert split.train_pairs == all_train[-10:]


def test_holdout_pairs_follow_the_majority_and_drop_ties():
    table = pairs_table(0)
    prompt = [{"role": "user", "content": "q"}]
    rows = [{"prompt": prompt, "chosen": "A", "rejected": "B"}] * 3 + [{"prompt": prompt, "chosen": "B", "rejected": "A"}]
    rows += [{"prompt": prompt, "chosen": "C", "rejected": "D"}, {"prompt": prompt, "chosen": "D", "rejected": "C"}]
    from alignloop.datasets import Split

    pairs = holdout_eval_pairs(Split([], [], [], rows), max_examples=10)
    assert [(p.chosen, p.rejected, p.votes) for p in pairs] == [("A", "B", 3)]
    assert table.num_rows == 0


def test_thumbs_become_pairs_of_up_and_down_answers_to_one_prompt():
    from alignloop.datasets import Split

    prompt = [{"role": "user", "content": "q"}]
    thumbs = [{"prompt": prompt, "completion": "good", "label": True},
              {"prompt": prompt, "completion": "good", "label": True},
              {"prompt": prompt, "completion": "bad", "label": False},
              {"prompt": [{"role": "user", "content": "other"}], "completion": "lonely", "label": True}]
    pairs = holdout_eval_pairs(Split([], [], thumbs, []), max_examples=10)
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [(prompt, "good", "bad")]


def test_trl_formats_are_conversational():
    split = split_snapshot(thumbs_table(10, 10), pairs_table(20), 0.2)
    pref = preference_dataset(split.train_pairs)
    assert set(pref.column_names) == {"prompt", "chosen", "rejected"}
    assert pref[0]["chosen"][0]["role"] == "assistant"
    unpaired = unpaired_dataset([], split.train_pairs, seed=0)
    assert len(unpaired) == 2 * len(split.train_pairs)
    labels = unpaired["label"]
    assert sum(labels) == len(split.train_pairs)
    assert labels[: len(labels) // 2] != [True] * (len(labels) // 2)  # shuffled, not all chosen first


def test_datasets_from_arrow_tables_hold_the_rows_as_trl_reads_them():
    from alignloop.datasets import prompt_dataset

    pairs = pairs_table(9, n_prompts=4)
    pref = preference_dataset(pairs)  # straight from the Arrow table the store's SQL split returns
    first = pairs.slice(0, 1).to_pylist()[0]
    assert pref[0] == {"prompt": first["prompt"], "chosen": [{"role": "assistant", "content": first["chosen"]}],
                       "rejected": [{"role": "assistant", "content": first["rejected"]}]}
    assert pref.to_list() == preference_dataset(pairs.to_pylist()).to_list()
    kto = unpaired_dataset(thumbs_table(0, 0), pairs, seed=1)
    rows = {(r["completion"][0]["content"], r["label"]) for r in kto}
    assert rows == {(a, True) for a in pairs["chosen"].to_pylist()} | {(a, False) for a in pairs["rejected"].to_pylist()}
    prompts = prompt_dataset(pairs)["prompt"]
    assert [prompt_key(p) for p in prompts] == sorted({prompt_key(p) for p in pairs["prompt"].to_pylist()})


def _thumbs_and_pairs():
    thumbs = [{"prompt": [{"role": "user", "content": f"q{i}"}], "completion": f"thumbed answer {i}", "label": i % 3 == 0}
              for i in range(9)]
    pairs = [{"prompt": [{"role": "user", "content": f"p{i}"}], "chosen": f"good {i}", "rejected": f"bad {i}"}
             for i in range(4)]
    return thumbs, pairs


@pytest.mark.parametrize("train_on,expected", [
    ("unpaired_pairs", {(f"good {i}", True) for i in range(4)} | {(f"bad {i}", False) for i in range(4)}),
    ("thumbs", {(f"thumbed answer {i}", i % 3 == 0) for i in range(9)}),
    ("thumbs+unpaired_pairs", {(f"thumbed answer {i}", i % 3 == 0) for i in range(9)}
     | {(f"good {i}", True) for i in range(4)} | {(f"bad {i}", False) for i in range(4)}),
])
def test_kto_rows_are_exactly_what_train_on_names(train_on, expected):
    from alignloop.datasets import unpaired_training_rows

    thumbs, pairs = _thumbs_and_pairs()
    rows = unpaired_training_rows(thumbs, pairs, train_on)
    assert sorted((r["completion"], r["label"]) for r in rows) == sorted(expected)
    dataset = unpaired_dataset(thumbs, pairs, seed=0, train_on=train_on)
    assert sorted((c[0]["content"], lab) for c, lab in zip(dataset["completion"], dataset["label"], strict=True)) \
        == sorted(expected)


def test_kto_rows_refuse_an_unknown_train_on():
    thumbs, pairs = _thumbs_and_pairs()
    with pytest.raises(ValueError, match="hyperparameters.train_on 'pairs'"):
        unpaired_dataset(thumbs, pairs, seed=0, train_on="pairs")
