"""Training and evaluation with TRL's real trainers on the tiny offline model, a few steps each."""

from __future__ import annotations

import pytest

from alignloop.config import LoraSettings
from alignloop.datasets import holdout_eval_pairs, split_snapshot
from alignloop.errors import DataError
from alignloop.planner import Plan
from alignloop.training import train_candidate
from tests.unit.methods.training import trains_saves_and_evaluates
from tests.unit.test_planner import EMPTY_PAIRS, EMPTY_THUMBS, pairs_table

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("data", "training", "method", "kind"),
    [
        ("thumbs", {}, "ipo", "lora"),   # thumbs that make pairs: IPO on pairs from thumbs
        ("pairs", {"lora": LoraSettings(enabled=False)}, "ipo", "full"),   # pairs: IPO (bench methods)
    ],
)
def test_the_planners_choice_trains_saves_and_evaluates(tmp_path, tiny_dir, data, training, method, kind):
    """Each method asked for by name is tested in tests/unit/methods/; here the planner chooses."""
    trains_saves_and_evaluates(tmp_path, tiny_dir, data, training, method, kind)


def test_reference_and_candidate_score_identically_before_training(tiny_dir):
    """With an untouched adapter the candidate is the reference: same scores, zero margin."""
    from peft import LoraConfig, get_peft_model

    from alignloop.evaluation.scoring import encode_pairs, score_pairs
    from alignloop.models import load_causal_lm, load_tokenizer

    split = split_snapshot(EMPTY_THUMBS, pairs_table(60, n_prompts=20), 0.3)
    pairs = holdout_eval_pairs(split)
    tokenizer = load_tokenizer(tiny_dir)
    model = get_peft_model(load_causal_lm(tiny_dir), LoraConfig(r=4, target_modules=["q_proj"])).eval()
    encoded = encode_pairs(tokenizer, pairs, max_length=64)
    kw = dict(pad_id=tokenizer.pad_token_id, batch_size=4, device="cpu")
    with_adapter = score_pairs(model, encoded, **kw)
    with model.disable_adapter():
        without = score_pairs(model, encoded, **kw)
    assert with_adapter.logp_chosen == pytest.approx(without.logp_chosen, abs=1e-5)
    assert all(n > 0 for n in with_adapter.n_chosen)


def test_a_skip_plan_does_not_train(tmp_path, tiny_dir):
    split = split_snapshot(EMPTY_THUMBS, EMPTY_PAIRS, 0.3)
    with pytest.raises(DataError, match="skip"):
        train_candidate(Plan("skip", {}, ("thin",)), split, tiny_dir, tmp_path)
