"""The served model: what `mlflow.pyfunc.load_model` and `mlflow models serve` run, and how a model
folder is logged as it. Pickled by value, so a machine that loads it needs the model's pip
requirements, not alignloop.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import cloudpickle
import mlflow
import mlflow.artifacts
import mlflow.pyfunc

from alignloop.errors import TerminalError
from alignloop.registry.access import GENERATION_DEFAULTS, MODEL_INFO_FILE


class TextGenerator(mlflow.pyfunc.PythonModel):
    """The served model: a Hugging Face causal LM (full weights or LoRA on its base) that completes prompts.

    Pickled by value when logged (see `_pickled_by_value`), so a machine that loads it needs the
    model's pip requirements, not alignloop. Generation settings come from model_config["generation"]
    (max_new_tokens, temperature, device) and can be overridden at load time.
    """

    def load_context(self, context):
        import json
        from pathlib import Path

        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model_dir = Path(context.artifacts["model"])
        info = json.loads(Path(context.artifacts["alignloop_model"]).read_text())
        generation = dict((context.model_config or {}).get("generation") or {})
        self.max_new_tokens = int(generation.get("max_new_tokens", 128))
        self.temperature = float(generation.get("temperature", 0.0))
        device = generation.get("device") or "auto"
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"

        def from_pretrained(loader, where):  # a GGUF base is a file, not a folder
            where = Path(where)
            if where.is_file() and where.suffix == ".gguf":
                return loader.from_pretrained(where.parent, gguf_file=where.name)
            return loader.from_pretrained(where)

        if info.get("kind") == "lora":
            from peft import PeftModel

            adapter = json.loads((model_dir / "adapter_config.json").read_text())
            shipped = context.artifacts.get("base_model")  # logged beside the adapter: loads anywhere
            local = info.get("base_model_path")
            base = shipped if shipped and Path(shipped).exists() else local if local and Path(local).exists() else (
                info.get("base_model") or adapter.get("base_model_name_or_path")
            )
            if not base:
                raise ValueError("LoRA adapter without a base model: set base_model or base_model_path")
            # Merged weights generate faster and no longer need peft at predict time.
            model = PeftModel.from_pretrained(from_pretrained(AutoModelForCausalLM, base), model_dir)
            model = model.merge_and_unload()
        else:
            base = model_dir
            model = from_pretrained(AutoModelForCausalLM, model_dir)
        has_tokenizer = any((model_dir / f).exists() for f in ("tokenizer.json", "tokenizer_config.json"))
        self.tokenizer = from_pretrained(AutoTokenizer, model_dir if has_tokenizer else base)
        self.model = model.to(device).eval()
        self.device = device

    def predict(self, context, model_input: list[str], params: dict | None = None) -> list[str]:
        import torch

        params = params or {}
        max_new_tokens = int(params.get("max_new_tokens", self.max_new_tokens))
        temperature = float(params.get("temperature", self.temperature))
        tok = self.tokenizer
        answers = []
        for prompt in model_input:
            text = prompt
            if getattr(tok, "chat_template", None):
                text = tok.apply_chat_template(
                    [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
                )
            ids = tok(text, return_tensors="pt").to(self.device)
            with torch.no_grad():
                out = self.model.generate(
                    **ids,
                    max_new_tokens=max_new_tokens,
                    do_sample=temperature > 0,
                    **({"temperature": temperature} if temperature > 0 else {}),
                    pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                )
            answers.append(tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
        return answers



def _checked_model_info(model_dir: Path, model_info: Mapping[str, Any]) -> dict[str, Any]:
    if not model_dir.is_dir():
        raise TerminalError(f"model folder {model_dir} does not exist; train first or pass the saved folder")
    is_adapter = (model_dir / "adapter_config.json").is_file()
    kind = model_info.get("kind") or ("lora" if is_adapter else "full")
    if kind == "lora" and not is_adapter:
        raise TerminalError(f"{model_dir}: model_info says kind=lora but adapter_config.json is missing")
    if kind == "full" and not (model_dir / "config.json").is_file():
        raise TerminalError(f"{model_dir}: model_info says kind=full but config.json is missing")
    if kind not in ("lora", "full"):
        raise TerminalError(f"model_info kind {kind!r} is not one of 'lora', 'full'")
    return {**model_info, "kind": kind}


def _log_model(model_dir: Path, info: dict[str, Any], tags: dict[str, str], step: int,
               extra_artifacts: dict[str, Path] | None = None) -> Any:
    """Log the folder as a pyfunc model (files copied as-is). Nothing here loads the weights: no
    input_example (MLflow would call predict to validate it) and explicit requirements (MLflow would
    otherwise load the model to infer them)."""
    with tempfile.TemporaryDirectory(prefix="alignloop-model-") as tmp:
        info_file = Path(tmp) / MODEL_INFO_FILE
        info_file.write_text(json.dumps(info, indent=2, default=str) + "\n")
        with _pickled_by_value():
            return mlflow.pyfunc.log_model(
                name="model",
                python_model=TextGenerator(),
                artifacts={"model": str(model_dir.resolve()), "alignloop_model": str(info_file),
                           **{k: str(Path(v).resolve()) for k, v in (extra_artifacts or {}).items()}},
                pip_requirements=_pip_requirements(info["kind"]),
                metadata={"alignloop": json.loads(json.dumps(info, default=str))},
                # MLflow ignores load-time model_config keys that were not logged with the model.
                model_config={"generation": dict(GENERATION_DEFAULTS)},
                tags=tags,
                step=step,
            )


_pickle_lock = threading.Lock()


@contextlib.contextmanager
def _pickled_by_value() -> Iterator[None]:
    # cloudpickle stores classes by import path by default; the serving side would then need
    # alignloop installed. By value, TextGenerator travels inside python_model.pkl. Its methods only
    # use the standard library and the libraries in the pip requirements.
    module = sys.modules[__name__]
    with _pickle_lock:
        cloudpickle.register_pickle_by_value(module)
        try:
            yield
        finally:
            cloudpickle.unregister_pickle_by_value(module)


def _pip_requirements(kind: str) -> list[str]:
    names = ["mlflow", "cloudpickle", "torch", "transformers", "accelerate"]
    if kind == "lora":
        names.append("peft")
    requirements = []
    for name in names:
        try:
            # Local labels such as +cpu are not on any index; the public release is what a server installs.
            requirements.append(f"{name}=={importlib_metadata.version(name).split('+')[0]}")
        except importlib_metadata.PackageNotFoundError:
            requirements.append(name)
    return requirements

