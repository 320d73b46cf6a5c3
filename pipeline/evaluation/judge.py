"""Who decides whether the candidate's own answers beat the champion's (or the reference's).

Either a reward model fitted with TRL's RewardTrainer on the training feedback (never on held-out
prompts), or a model behind an OpenAI-compatible chat endpoint. Either way the judge is first
graded on held-out pairs whose preferred answer is known; below `min_accuracy` it is reported as
unusable and its win rate is not trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from alignloop.datasets import EvalPair
from alignloop.errors import ConfigError, TransientError

log = logging.getLogger(__name__)


class Judge(Protocol):
    kind: str

    def prefer(self, prompts: Sequence[list[dict[str, str]]], first: Sequence[str],
               second: Sequence[str]) -> list[float]:
        """Per prompt: 1.0 when the first answer is better, 0.0 when the second is, 0.5 for a tie."""
        ...


@dataclass(frozen=True)
class JudgeSummary:
    kind: str
    usable: bool
    accuracy: float | None
    n_accuracy_pairs: int

    def to_dict(self) -> dict:
        return {"kind": self.kind, "usable": self.usable, "accuracy": self.accuracy,
                "n_accuracy_pairs": self.n_accuracy_pairs}


def judge_accuracy(judge: Judge, pairs: Sequence[EvalPair]) -> float:
    """Share of held-out pairs where the judge prefers the answer people preferred (ties count half)."""
    verdicts = judge.prefer([p.prompt for p in pairs], [p.chosen for p in pairs], [p.rejected for p in pairs])
    return sum(verdicts) / len(verdicts)


def win_rates(judge: Judge, prompts: Sequence[list[dict[str, str]]], candidate: Sequence[str],
              other: Sequence[str]) -> list[float]:
    """Per prompt: 1 when the candidate's answer wins, 0 when it loses, 0.5 when equal or tied."""
    todo = [i for i in range(len(prompts)) if candidate[i] != other[i]]
    verdicts = judge.prefer([prompts[i] for i in todo], [candidate[i] for i in todo], [other[i] for i in todo]) \
        if todo else []
    out = [0.5] * len(prompts)
    for i, v in zip(todo, verdicts, strict=True):
        out[i] = v
    return out


# ------------------------------------------------------------------------------------ reward model
class RewardModelJudge:
    """A sequence-classification model with one score: the better answer scores higher."""

    kind = "reward_model"

    def __init__(self, folder: Path, tokenizer, *, device: str, batch_size: int, max_length: int) -> None:
        from transformers import AutoModelForSequenceClassification

        self.model = AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=1).to(device).eval()
        self.model.config.pad_token_id = tokenizer.pad_token_id
        self.tokenizer, self.device, self.batch_size, self.max_length = tokenizer, device, batch_size, max_length

    def scores(self, prompts: Sequence[list[dict[str, str]]], answers: Sequence[str]) -> list[float]:
        import torch

        from alignloop.evaluation.scoring import _ids

        texts = [_ids(self.tokenizer.apply_chat_template(p + [{"role": "assistant", "content": a}], tokenize=True))
                 [-self.max_length:] for p, a in zip(prompts, answers, strict=True)]
        pad = self.tokenizer.pad_token_id
        out: list[float] = []
        with torch.inference_mode():
            for lo in range(0, len(texts), self.batch_size):
                chunk = texts[lo: lo + self.batch_size]
                width = max(len(t) for t in chunk)
                ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, t in enumerate(chunk):  # right padding: the score is read at the last real token
                    ids[row, : len(t)] = torch.tensor(t)
                    mask[row, : len(t)] = 1
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
                out += logits[:, 0].float().tolist()
        return out

    def prefer(self, prompts, first, second) -> list[float]:
        a, b = self.scores(prompts, first), self.scores(prompts, second)
        return [1.0 if x > y else 0.0 if x < y else 0.5 for x, y in zip(a, b, strict=True)]


def train_reward_judge(pairs: Sequence[EvalPair], base_dir: Path, out_dir: Path, tokenizer, *, steps: int,
                       learning_rate: float, batch_size: int, max_length: int, device: str, seed: int = 0) -> Path:
    """Fit a reward model on training pairs with TRL's RewardTrainer (LoRA, merged); return its folder."""
    from peft import LoraConfig
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from alignloop.datasets import preference_dataset

    if not pairs:
        raise ValueError("no training pairs for the reward-model judge")
    model = AutoModelForSequenceClassification.from_pretrained(str(base_dir), num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    on_cpu = device == "cpu"
    args = RewardConfig(
        output_dir=str(out_dir / "trainer"), max_steps=steps, learning_rate=learning_rate,
        per_device_train_batch_size=batch_size, max_length=max_length, dataset_num_proc=None,
        seed=seed, data_seed=seed, logging_steps=max(1, steps // 5), save_strategy="no", report_to=[],
        use_cpu=on_cpu, bf16=not on_cpu, gradient_checkpointing=False, lr_scheduler_type="cosine",
        warmup_steps=max(1, steps // 10), disable_tqdm=True,
    )
    rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]
    peft = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="SEQ_CLS",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    trainer = RewardTrainer(model=model, args=args, train_dataset=preference_dataset(rows),
                            processing_class=tokenizer, peft_config=peft)
    log.info("training the judge's reward model on %d pairs for %d steps", len(rows), steps)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout, under the CLI's display
    trainer.train()
    merged = trainer.model.merge_and_unload() if hasattr(trainer.model, "merge_and_unload") else trainer.model
    folder = out_dir / "model"
    merged.save_pretrained(str(folder))
    return folder


# ------------------------------------------------------------------------------------ endpoint
JUDGE_INSTRUCTIONS = (
    "You compare two answers an assistant could give to the same conversation. Reply with the single "
    "letter A or B: the answer a careful user would prefer (correct, helpful, polite, concise)."
)


class EndpointJudge:
    """A chat model behind an OpenAI-compatible /chat/completions endpoint, asked "A or B?".

    The order the answers are shown in is decided by a hash of the prompt and answers, so a judge
    that always says "A" scores about half, not all.
    """

    kind = "endpoint"

    def __init__(self, base_url: str, model: str, *, api_key: str | None, timeout_s: float) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self._api_key, self.timeout_s = model, api_key, timeout_s

    @classmethod
    def from_settings(cls, judge) -> EndpointJudge:
        if not judge.endpoint_url or not judge.endpoint_model:
            raise ConfigError("evaluation.judge: kind endpoint needs endpoint_url and endpoint_model; set both")
        key = None
        if judge.api_key_env:
            key = os.environ.get(judge.api_key_env)
            if not key:
                raise ConfigError(f"evaluation.judge.api_key_env: environment variable {judge.api_key_env} is not "
                                  "set; export it or remove api_key_env")
        return cls(judge.endpoint_url, judge.endpoint_model, api_key=key, timeout_s=judge.timeout_s)

    def _ask(self, prompt: list[dict[str, str]], a: str, b: str) -> str:
        conversation = "\n".join(f"{m['role']}: {m['content']}" for m in prompt)
        body = {"model": self.model, "temperature": 0, "max_tokens": 2, "messages": [
            {"role": "system", "content": JUDGE_INSTRUCTIONS},
            {"role": "user", "content": f"Conversation:\n{conversation}\n\nAnswer A:\n{a}\n\nAnswer B:\n{b}\n\n"
                                        "Which answer is better? Reply A or B."}]}
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                reply = json.loads(response.read())
        except urllib.error.HTTPError as e:
            raise TransientError(f"judge endpoint {self.url} answered HTTP {e.code}; check evaluation.judge "
                                 "endpoint_url, endpoint_model and the key") from None
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            raise TransientError(f"judge endpoint {self.url} unreachable ({getattr(e, 'reason', e)}); "
                                 "check evaluation.judge.endpoint_url") from None
        except ValueError:
            raise TransientError(f"judge endpoint {self.url} did not answer JSON") from None
        try:
            return str(reply["choices"][0]["message"]["content"]).strip()[:1].upper()
        except (KeyError, IndexError, TypeError):
            raise TransientError(f"judge endpoint {self.url} answered without choices[0].message.content") from None

    def prefer(self, prompts, first, second) -> list[float]:
        out = []
        for p, x, y in zip(prompts, first, second, strict=True):
            swap = int(hashlib.sha256(json.dumps([p, x, y]).encode()).hexdigest()[:2], 16) % 2 == 1
            letter = self._ask(p, y, x) if swap else self._ask(p, x, y)
            if letter not in ("A", "B"):
                out.append(0.5)  # an answer that is neither counts as a tie, never as a win
                continue
            first_won = (letter == "A") != swap
            out.append(1.0 if first_won else 0.0)
        return out


def build_judge(judge_settings, train_pairs: Sequence[EvalPair], base_dir: Path, work_dir: Path, *, device: str,
                max_length: int, batch_size: int, seed: int = 0, reward_model_dir: Path | None = None) -> Judge | None:
    """The configured judge, ready to compare answers; None when judge.kind is none or cannot be built.

    A reward model the training already fitted (RLHF) is reused instead of fitting another.
    """
    if judge_settings.kind == "none":
        return None
    if judge_settings.kind == "endpoint":
        return EndpointJudge.from_settings(judge_settings)
    from alignloop.models import load_tokenizer

    tokenizer = load_tokenizer(base_dir)
    folder = reward_model_dir if reward_model_dir is not None and (reward_model_dir / "config.json").exists() else None
    if folder is None:
        if not train_pairs:
            log.warning("no training pairs to fit the judge's reward model on; no win rate this run")
            return None
        # Fitted once per run: the same pairs and settings give the same judge, so a re-evaluation reuses it.
        recipe = hashlib.sha256(json.dumps(
            [judge_settings.steps, judge_settings.learning_rate, judge_settings.batch_size, max_length, seed,
             [[p.prompt, p.chosen, p.rejected] for p in train_pairs]]).encode()).hexdigest()[:16]
        marker = work_dir / "model" / "recipe.json"
        if marker.exists() and json.loads(marker.read_text()).get("recipe") == recipe:
            folder = work_dir / "model"
        else:
            folder = train_reward_judge(train_pairs, base_dir, work_dir, tokenizer, steps=judge_settings.steps,
                                        learning_rate=judge_settings.learning_rate,
                                        batch_size=judge_settings.batch_size, max_length=max_length, device=device,
                                        seed=seed)
            marker.write_text(json.dumps({"recipe": recipe}))
    return RewardModelJudge(folder, tokenizer, device=device, batch_size=batch_size, max_length=max_length)
