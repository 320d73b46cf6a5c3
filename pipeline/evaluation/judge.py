"""Who decides whether the candidate's own answers beat the champion's (or the reference's).

The judge must not share the candidate's lessons: a reward model fitted on the rows the candidate
trained on rewards exactly the cues it learned, and an RLHF policy's own reward model is what it was
optimised to please. So the judges alignloop fits are cross-fitted on held-out prompts: held-out
prompts fall into two folds by hash, a judge is fitted on each fold, and every prompt is judged, and
the judge graded, by the one fitted on the other fold. The default is the probe (evaluation/probe.py:
linear heads on the reference's own features, a logistic fit); `reward_model` fits TRL RewardTrainer
models instead, at dozens of forward and backward passes per pair. A reward model named in the config
(`model_path`) or a model behind an OpenAI-compatible endpoint can be used instead. A judge known to
have been fitted on a training prompt is refused. Every judge is first graded on held-out pairs whose
preferred answer is known; below `min_accuracy` it is reported as unusable and its win rate is not
trusted.
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
from alignloop.errors import ConfigError, DataError, TransientError
from alignloop.evaluation.folds import FOLDS, MIN_FIT_PAIRS, judge_fold
from alignloop.schema import prompt_key

log = logging.getLogger(__name__)
progress = logging.getLogger("alignloop.evaluation.progress")  # INFO lines when no terminal shows the bars


class Judge(Protocol):
    kind: str
    provenance: str                            # where it learned, in words (report and review page)
    n_fit_pairs: int                           # pairs it was fitted on (0: not fitted here)
    fitted_prompt_keys: frozenset[str] | None  # prompts it learned from; None: fitted elsewhere

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
    fitted_on: str = ""
    n_fit_pairs: int = 0
    accuracy_ci_low: float | None = None
    accuracy_ci_high: float | None = None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "usable": self.usable, "accuracy": self.accuracy,
                "accuracy_ci_low": self.accuracy_ci_low, "accuracy_ci_high": self.accuracy_ci_high,
                "n_accuracy_pairs": self.n_accuracy_pairs, "fitted_on": self.fitted_on,
                "n_fit_pairs": self.n_fit_pairs}


def check_independent(judge: Judge, training_prompt_keys: set[str] | frozenset[str]) -> None:
    """Refuse a judge that learned from prompts the candidate trained on: it would reward what the
    candidate learned, whether or not its answers got better."""
    fitted = getattr(judge, "fitted_prompt_keys", None)
    if fitted is None:
        return
    shared = fitted & set(training_prompt_keys)
    if shared:
        raise DataError(
            f"the judge ({judge.provenance}) was fitted on {len(shared)} prompts the candidate trained on, so its "
            "win rate would reward what the candidate learned; cross-fit it on held-out prompts (evaluation.judge."
            "kind: probe, or reward_model without model_path) or name an independent judge "
            "(evaluation.judge.endpoint_url)")


def judge_accuracy(judge: Judge, pairs: Sequence[EvalPair]) -> float:
    """Share of held-out pairs where the judge prefers the answer people preferred (ties count half)."""
    verdicts = judge.prefer([p.prompt for p in pairs], [p.chosen for p in pairs], [p.rejected for p in pairs])
    return sum(verdicts) / len(verdicts)


def grade_judge(judge: Judge, pairs: Sequence[EvalPair], *, min_accuracy: float, bootstrap_samples: int = 2000,
                seed: int = 0) -> JudgeSummary:
    """The judge's accuracy on held-out pairs (which a cross-fitted judge grades with the model fitted on
    the other fold), with a 95% interval over prompts. Usable when the accuracy reaches min_accuracy and
    its interval lies above chance (0.5); on too few prompts for an interval it is not usable."""
    from alignloop.evaluation.bootstrap import interval_or_point

    verdicts = judge.prefer([p.prompt for p in pairs], [p.chosen for p in pairs], [p.rejected for p in pairs])
    iv = interval_or_point(verdicts, [prompt_key(p.prompt) for p in pairs], n_samples=bootstrap_samples, seed=seed)
    usable = iv.measured and iv.value >= min_accuracy and iv.low > 0.5
    return JudgeSummary(judge.kind, usable, iv.value, len(pairs), judge.provenance, judge.n_fit_pairs,
                        iv.low if iv.measured else None, iv.high if iv.measured else None)


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

    def __init__(self, folder: Path, tokenizer, *, device: str, batch_size: int, max_length: int,
                 provenance: str | None = None) -> None:
        from transformers import AutoModelForSequenceClassification

        recipe = _read_recipe(Path(folder))
        self.fitted_prompt_keys = frozenset(recipe["prompt_keys"]) if "prompt_keys" in recipe else None
        self.n_fit_pairs = int(recipe.get("n_pairs", 0))
        self.provenance = provenance or f"the reward model at {folder}"
        self.model = AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=1).to(device).eval()
        self.model.config.pad_token_id = tokenizer.pad_token_id
        self.tokenizer, self.device, self.batch_size, self.max_length = tokenizer, device, batch_size, max_length

    def scores(self, prompts: Sequence[list[dict[str, str]]], answers: Sequence[str]) -> list[float]:
        import torch

        from alignloop.evaluation.scoring import _ids, right_padded

        texts = [_ids(self.tokenizer.apply_chat_template(p + [{"role": "assistant", "content": a}], tokenize=True))
                 [-self.max_length:] for p, a in zip(prompts, answers, strict=True)]
        pad = self.tokenizer.pad_token_id
        out: list[float] = []
        with torch.inference_mode():
            for lo in range(0, len(texts), self.batch_size):
                # right padding: the score is read at the last real token
                ids, mask = right_padded(texts[lo: lo + self.batch_size], pad)
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
    n_fit_pairs = 0
    fitted_prompt_keys = None  # a model served elsewhere: it never saw this target's feedback

    def __init__(self, base_url: str, model: str, *, api_key: str | None, timeout_s: float) -> None:
        from urllib.parse import urlsplit

        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self._api_key, self.timeout_s = model, api_key, timeout_s
        self.provenance = f"the model {model} at an endpoint on {urlsplit(base_url).hostname}, named in the config"

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


# ------------------------------------------------------------------------------------ cross-fitted
class CrossFittedJudge:
    """Reward models fitted on disjoint folds of held-out prompts; each prompt is judged by the model
    fitted on the other fold, so no prompt is judged by a model that learned from it."""

    kind = "reward_model"

    def __init__(self, judges: Sequence[RewardModelJudge], n_fit_pairs: int, n_fit_prompts: int) -> None:
        self.judges = list(judges)  # judges[k] judges the prompts of fold k
        self.n_fit_pairs = n_fit_pairs
        self.fitted_prompt_keys = frozenset().union(*(j.fitted_prompt_keys or frozenset() for j in judges))
        self.provenance = (f"reward models cross-fitted on {n_fit_pairs} held-out pairs over {n_fit_prompts} prompts "
                           f"in {len(judges)} folds; each prompt judged by the model fitted on the other fold, "
                           "none fitted on the candidate's training rows")

    def prefer(self, prompts, first, second) -> list[float]:
        out = [0.5] * len(prompts)
        for k, judge in enumerate(self.judges):
            idx = [i for i, p in enumerate(prompts) if judge_fold(p) == k]
            if idx:
                for i, v in zip(idx, judge.prefer([prompts[i] for i in idx], [first[i] for i in idx],
                                                  [second[i] for i in idx]), strict=True):
                    out[i] = v
        return out


def _read_recipe(folder: Path) -> dict:
    try:
        return json.loads((folder / "recipe.json").read_text())
    except (OSError, ValueError):
        return {}


def fit_reward_judge(pairs: Sequence[EvalPair], base_dir: Path, cache_dir: Path, tokenizer, judge_settings, *,
                     device: str, max_length: int, seed: int) -> Path:
    """A reward model fitted on `pairs`, cached by its recipe (the same pairs and settings give the same
    judge, so a re-evaluation or another candidate of the same data reuses it). Its folder's recipe.json
    lists the prompts it learned from."""
    recipe = hashlib.sha256(json.dumps(
        [judge_settings.steps, judge_settings.learning_rate, judge_settings.batch_size, max_length, seed,
         str(base_dir), [[p.prompt, p.chosen, p.rejected] for p in pairs]]).encode()).hexdigest()[:16]
    work = cache_dir / recipe
    if _read_recipe(work / "model").get("recipe") == recipe:
        return work / "model"
    folder = train_reward_judge(pairs, base_dir, work, tokenizer, steps=judge_settings.steps,
                                learning_rate=judge_settings.learning_rate, batch_size=judge_settings.batch_size,
                                max_length=max_length, device=device, seed=seed)
    keys = sorted({prompt_key(p.prompt) for p in pairs})
    (folder / "recipe.json").write_text(json.dumps({"recipe": recipe, "n_pairs": len(pairs), "prompt_keys": keys}))
    return folder


def build_judge(judge_settings, held_out_pairs: Sequence[EvalPair], base_dir: Path, cache_dir: Path, *, device: str,
                max_length: int, batch_size: int, seed: int = 0, training_prompt_keys: frozenset[str] = frozenset(),
                own_reward_model: Path | None = None) -> Judge | None:
    """The configured judge, ready to compare answers; None when judge.kind is none or too few held-out
    pairs to cross-fit one. Raises when the judge learned from the candidate's training prompts, or is
    the run's own reward model (`own_reward_model`, what an RLHF policy was optimised against)."""
    if judge_settings.kind == "none":
        return None
    if judge_settings.kind == "endpoint":
        return EndpointJudge.from_settings(judge_settings)
    if judge_settings.kind == "probe":  # fitted inside the evaluation, on the features its scoring pass reads
        from alignloop.evaluation.probe import ProbeJudge

        return ProbeJudge(training_prompt_keys=frozenset(training_prompt_keys))
    from alignloop.models import load_tokenizer

    kw = dict(device=device, batch_size=batch_size, max_length=max_length)
    if judge_settings.model_path is not None:
        folder = Path(judge_settings.model_path)
        if own_reward_model is not None and folder.resolve() == Path(own_reward_model).resolve():
            raise ConfigError("evaluation.judge.model_path is this run's own reward model, the one the policy was "
                              "optimised against: it cannot judge it; name another judge or leave model_path unset")
        judge: Judge = RewardModelJudge(folder, load_tokenizer(base_dir), provenance=f"the reward model at {folder}, "
                                        "named in the config", **kw)
    else:
        judge = _cross_fitted(judge_settings, held_out_pairs, base_dir, cache_dir, seed=seed, **kw)
        if judge is None:
            return None
    check_independent(judge, training_prompt_keys)
    return judge


def _cross_fitted(judge_settings, pairs: Sequence[EvalPair], base_dir: Path, cache_dir: Path, *,
                  device: str, batch_size: int, max_length: int, seed: int) -> CrossFittedJudge | None:
    from alignloop.models import load_tokenizer

    folds = [[p for p in pairs if judge_fold(p.prompt) != k] for k in range(FOLDS)]  # folds[k]: fits fold k's judge
    if min(len(f) for f in folds) < MIN_FIT_PAIRS:
        log.warning("too few held-out pairs (%d) to cross-fit a judge (at least %d per fold): no win rate this run; "
                    "name one in evaluation.judge (endpoint_url or model_path)", len(pairs), MIN_FIT_PAIRS)
        return None
    tokenizer = load_tokenizer(base_dir)
    judges = []
    for k, fit_on in enumerate(folds):
        progress.info("evaluation: fitting the judge for fold %d of %d on %d held-out pairs (%d steps)",
                      k + 1, FOLDS, len(fit_on), judge_settings.steps)
        folder = fit_reward_judge(fit_on, base_dir, cache_dir, tokenizer, judge_settings, device=device,
                                  max_length=max_length, seed=seed)
        judges.append(RewardModelJudge(folder, tokenizer, device=device, batch_size=batch_size, max_length=max_length))
    return CrossFittedJudge(judges, len(pairs), len({prompt_key(p.prompt) for p in pairs}))
