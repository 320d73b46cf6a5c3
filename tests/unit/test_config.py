"""Settings: defaults resolved against the config's folder; bad settings are one-line errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from alignloop.config import load_settings, settings_from_dict
from alignloop.errors import ConfigError

GOOD = """
target: my-model
sources:
  - name: prod
    connector: duckdb
    options:
      path: wh.duckdb
base_model:
  tiny: true
training:
  max_steps: 5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alignloop.yaml"
    path.write_text(text)
    return path


def test_defaults_resolve_relative_to_the_config_folder(tmp_path):
    s = load_settings(write(tmp_path, GOOD))
    assert s.store_path == tmp_path / "feedback.duckdb"
    assert s.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert s.sources[0].options["path"] == str(tmp_path / "wh.duckdb")
    assert (s.training.max_steps, s.training.method, s.experiment_name) == (5, "auto", "my-model")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD + "  max_step: 3\n", "training.max_step: unknown key"),
        (GOOD.replace("max_steps: 5", "max_steps: ten"), "training.max_steps: Input should be a valid integer"),
        ("target: x\nbase_model: {tiny: true}\n", "sources: required setting is missing"),
        ("target: x\nsources: []\nbase_model: {tiny: true}\n", "sources: at least one source is required"),
        (GOOD.replace("tiny: true", "tiny: false"), "base_model: set exactly one of tiny, packaged, path, hub_id"),
        (GOOD + "  method: ppo\n", "training.method: Input should be 'auto', 'dpo', 'ipo', 'kto' or 'rlhf'"),
        (GOOD + "colour: blue\n", "colour: unknown key"),
    ],
)
def test_bad_config_is_one_line_naming_the_field(tmp_path, text, expected):
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text))
    message = str(err.value)
    assert expected in message
    assert "\n" not in message and str(tmp_path) in message


def test_target_is_only_needed_where_the_registry_is(tmp_path):
    s = load_settings(write(tmp_path, GOOD.replace("target: my-model\n", "")))
    assert s.target is None and s.store_path == tmp_path / "feedback.duckdb"  # ingest and plan need no more
    with pytest.raises(ConfigError, match=r"^target: required to evaluate against the champion, register"):
        _ = s.model_name
    with pytest.raises(ConfigError, match=r"^target: required"):
        _ = s.experiment_name
    assert load_settings(write(tmp_path, GOOD)).model_name == "my-model"


def test_missing_file_says_how_to_get_one(tmp_path):
    with pytest.raises(ConfigError, match="alignloop demo"):
        load_settings(tmp_path / "nope.yaml")


def test_invalid_yaml_names_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"line \d+: not valid YAML"):
        load_settings(write(tmp_path, "target: x\nsources: [\n"))


def test_env_references_and_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("WH_FILE", "other.duckdb")
    monkeypatch.setenv("ALIGNLOOP__TRAINING__MAX_STEPS", "7")
    s = load_settings(write(tmp_path, GOOD.replace("wh.duckdb", "${WH_FILE}")))
    assert s.sources[0].options["path"] == str(tmp_path / "other.duckdb")
    assert s.training.max_steps == 7


def test_unset_env_reference_names_variable_and_field(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match=r"sources\.0\.options\.path: environment variable NOPE_PASSWORD"):
        load_settings(write(tmp_path, GOOD.replace("wh.duckdb", "${NOPE_PASSWORD}")))


def test_duplicate_source_names_are_refused(tmp_path):
    raw = {"target": "x", "base_model": {"tiny": True},
           "sources": [{"name": "a"}, {"name": "a"}]}
    with pytest.raises(ConfigError, match="source names must be unique"):
        settings_from_dict(raw, base_dir=tmp_path)


def test_config_hash_ignores_connector_options_but_not_training(tmp_path, monkeypatch):
    monkeypatch.setenv("S1", "s1")
    monkeypatch.setenv("S2", "s2")
    base = {"target": "x", "base_model": {"tiny": True}, "sources": [{"name": "a", "options": {"password": "${S1}"}}]}
    other_secret = {**base, "sources": [{"name": "a", "options": {"password": "${S2}"}}]}
    more_steps = {**base, "training": {"max_steps": 99}}
    h = [settings_from_dict(r, base_dir=tmp_path).config_hash() for r in (base, other_secret, more_steps)]
    assert h[0] == h[1] != h[2]


def test_an_sft_weight_of_zero_keeps_the_config_hash_of_settings_without_it_and_a_weight_changes_it(tmp_path):
    import hashlib
    import json

    base = {"target": "x", "base_model": {"tiny": True}, "sources": [{"name": "a"}]}
    zero, weighted = (settings_from_dict({**base, "training": {"sft_weight": w}}, base_dir=tmp_path)
                      for w in (0.0, 0.5))
    # The hash as it was computed before training.sft_weight existed: an upgrade alone retrains nothing.
    relevant = zero.model_dump(mode="json", include={"base_model", "planning", "training", "evaluation"})
    for name in ("processes", "accelerate_config", "sft_weight"):
        relevant["training"].pop(name)
    relevant["sources"] = [{"name": s.name, "shape": s.shape, "mapping": s.mapping, "shape_options": s.shape_options}
                           for s in zero.sources]
    before = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]
    assert zero.config_hash() == settings_from_dict(base, base_dir=tmp_path).config_hash() == before
    assert weighted.config_hash() != before


def test_a_section_written_twice_is_refused_naming_both_lines(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, GOOD + "training:\n  max_steps: 9\n"))
    message = str(err.value)
    assert "line 12" in message and "key 'training' appears twice (first on line 10)" in message
    assert "\n" not in message


def test_a_key_written_twice_inside_a_section_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"key 'max_steps' appears twice \(first on line 11\)"):
        load_settings(write(tmp_path, GOOD + "  max_steps: 9\n"))


def test_yaml_anchors_and_merge_keys_still_load(tmp_path):
    text = GOOD + "evaluation:\n  batch_size: 4\n"
    s = load_settings(write(tmp_path, text.replace("training:\n  max_steps: 5\n",
                                                   "training:\n  <<: {max_steps: 6, seed: 1}\n  max_steps: 5\n")))
    assert (s.training.max_steps, s.training.seed, s.evaluation.batch_size) == (5, 1, 4)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("ALIGNLOOP__", "1", "ALIGNLOOP__: names no setting; write ALIGNLOOP__<SECTION>__<KEY>=value"),
        ("ALIGNLOOP__TRAINNG__MAX_STEPS", "3", "ALIGNLOOP__TRAINNG__MAX_STEPS: names no setting"),
        ("ALIGNLOOP__TRAINING__MAX_STEPZ", "3", "ALIGNLOOP__TRAINING__MAX_STEPZ: training.max_stepz: unknown key"),
        ("ALIGNLOOP__TRAINING__MAX_STEPS", "ten", "ALIGNLOOP__TRAINING__MAX_STEPS: training.max_steps: Input should be"),
        ("ALIGNLOOP__TRAINING__LORA__TARGET_MODULES", "[q_proj",
         "ALIGNLOOP__TRAINING__LORA__TARGET_MODULES: not valid JSON"),
        ("ALIGNLOOP__EVALUATION", "{holdout", "ALIGNLOOP__EVALUATION: not valid JSON"),
    ],
)
def test_a_bad_environment_override_is_one_line_naming_the_variable(tmp_path, monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, GOOD))
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_nested_environment_overrides_reach_every_depth(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNLOOP__TRAINING__LORA__R", "4")
    monkeypatch.setenv("alignloop__training__lora__target_modules", '["q_proj", "v_proj"]')
    monkeypatch.setenv("ALIGNLOOP__PROMOTION__MIN_GAIN_CI_LOW", "null")
    monkeypatch.setenv("ALIGNLOOP__EVALUATION", '{"holdout_fraction": 0.3}')
    s = load_settings(write(tmp_path, GOOD))
    assert (s.training.lora.r, s.training.lora.target_modules) == (4, ("q_proj", "v_proj"))
    assert s.training.max_steps == 5  # the file's other settings in the section stay
    assert s.promotion.min_gain_ci_low is None and s.evaluation.holdout_fraction == 0.3
