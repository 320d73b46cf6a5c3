"""The plan counts lengths with the base model's own tokenizer and chat template, as training will; it
approximates from characters only when no tokenizer loads, and says so."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest

from alignloop.config import BaseModelSettings, PlanningSettings, TrainingSettings, settings_from_dict
from alignloop.errors import ConfigError
from alignloop.models import load_base_tokenizer, load_tokenizer
from alignloop.planner import choose_method
from alignloop.schema import PAIRS_SCHEMA, UNPAIRED_SCHEMA
from alignloop.profile import measure_profile, measure_truncation
from alignloop.training.data import fit_rows, tokenize_pairs
from tests.shared_builds import tiny_model

TS = datetime(2026, 10, 1)
# Few characters, many tokens: the tiny model's byte-level BPE never saw these, so each takes ~3 tokens.
DENSE = "東京大阪京都札幌福岡神戸横浜名古屋仙台広島"
EMPTY_THUMBS = pa.Table.from_pylist([], schema=UNPAIRED_SCHEMA)


def _pairs(n: int) -> pa.Table:
    rows = []
    for i in range(n):
        question = f"{DENSE[: 6 + i % 14]} {i}?" if i % 2 else f"What is {i} plus {i}?"
        rows.append({"event_id": f"p{i}", "source": "s", "ts": TS, "user_id": None, "model_version": "v",
                     "prompt": [{"role": "user", "content": question}],
                     "chosen": f"Thank you, it is {2 * i}.", "rejected": "Go away."})
    return pa.Table.from_pylist(rows, schema=PAIRS_SCHEMA)


@pytest.fixture(scope="module")
def training_tokenizer():
    """The tokenizer training loads: from the built tiny model's folder."""
    return load_tokenizer(tiny_model())


def _training_count(tokenizer, pairs: pa.Table, max_length: int | None):
    fitted = fit_rows(tokenize_pairs(tokenizer, pairs.to_pylist(), "test"), max_length, 1024)
    return fitted.max_length, fitted.truncation.rows_truncated


def test_truncation_is_counted_with_the_models_tokenizer_where_characters_would_miss_it(tmp_path,
                                                                                       training_tokenizer):
    pairs = _pairs(40)
    tokenizer = load_base_tokenizer(BaseModelSettings(tiny=True), tmp_path)   # what `alignloop plan` loads
    _, expected = _training_count(training_tokenizer, pairs, 36)
    t = measure_profile(EMPTY_THUMBS, pairs, 0.0, max_length=36, tokenizer=tokenizer, model_noise=False).truncation
    assert t.exact and "chat template" in t.counted_with
    assert t.prompt_too_long + t.truncated == expected == 20      # every dense-prompt row, no other
    approx = measure_profile(EMPTY_THUMBS, pairs, 0.0, max_length=36, model_noise=False).truncation
    assert not approx.exact and approx.prompt_too_long + approx.truncated == 0   # what characters would say


def test_the_plan_chooses_max_length_as_training_would_and_training_uses_it(tmp_path, training_tokenizer):
    pairs = _pairs(40)
    chosen, _ = _training_count(training_tokenizer, pairs, None)
    tokenizer = load_base_tokenizer(BaseModelSettings(tiny=True), tmp_path)
    shape = measure_profile(EMPTY_THUMBS, pairs, 0.0, max_length_cap=1024, tokenizer=tokenizer, model_noise=False)
    assert shape.truncation.chosen and shape.truncation.max_length == chosen
    plan = choose_method(shape, TrainingSettings(), PlanningSettings())
    assert plan.hyperparameters["max_length"] == chosen
    assert any(r.startswith(f"max_length {chosen} chosen from the training rows") and "counted on the 40 training "
               "rows with the tokenizer" in r for r in plan.reasons)
    fitted = fit_rows(tokenize_pairs(training_tokenizer, pairs.to_pylist(), "test"), plan.hyperparameters["max_length"],
                      1024, plan.hyperparameters["max_length_reason"])
    assert "by the plan, counted with the tokenizer" in fitted.max_length_reason


def test_a_large_snapshot_is_measured_on_a_seeded_sample_and_says_so(tmp_path):
    rows = _pairs(60)
    tokenizer = load_base_tokenizer(BaseModelSettings(tiny=True), tmp_path)
    t = measure_truncation(EMPTY_THUMBS, rows, 40, tokenizer=tokenizer, sample_rows=25)
    assert (t.rows, t.sampled_from) == (25, 60)
    assert "counted on a seeded sample of 25 of the 60 training rows" in t.describe()
    assert measure_truncation(EMPTY_THUMBS, rows, 40, tokenizer=tokenizer, sample_rows=25) == t
    assert measure_truncation(EMPTY_THUMBS, rows, 40, tokenizer=tokenizer, sample_rows=25, seed=1) != t


def test_without_a_tokenizer_the_plan_approximates_and_says_why(tmp_path):
    source = {"name": "prod", "connector": "duckdb", "options": {"path": "wh.duckdb"}}
    settings = settings_from_dict({"target": "m", "sources": [source], "base_model": {"path": str(tmp_path)}},
                                  base_dir=tmp_path)
    from alignloop.stages import plan_tokenizer

    tokenizer, why = plan_tokenizer(settings)        # a folder with no model in it
    assert tokenizer is None and "could not be loaded" in why and "base_model.path" in why
    with pytest.raises(ConfigError):
        load_base_tokenizer(settings.base_model, tmp_path)
    shape = measure_profile(EMPTY_THUMBS, _pairs(40), 0.0, max_length_cap=1024, approximate_because=why,
                          model_noise=False)
    plan = choose_method(shape, TrainingSettings(), PlanningSettings())
    assert plan.hyperparameters["max_length"] is None     # training chooses it from the real token lengths
    assert any("approximate count" in r and why in r and "training chooses it" in r for r in plan.reasons)


def test_load_base_tokenizer_reads_a_packaged_gguf_without_converting_it(tmp_path):
    tokenizer = load_base_tokenizer(BaseModelSettings(packaged="smollm2-135m-instruct"), tmp_path)
    assert tokenizer.chat_template and not any(Path(tmp_path).iterdir())
