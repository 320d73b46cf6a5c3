"""Score the candidate and its reference the same way on held-out pairs the training never saw.

Preference accuracy: the share of held-out pairs where a model's mean per-token log-likelihood of
the chosen answer beats the rejected one. Implicit reward (DPO's view of the candidate):
r(y) = beta * (log pi_candidate(y) - log pi_reference(y)); reward accuracy is the share of pairs with
r(chosen) > r(rejected), and the margin is the mean r(chosen) - r(rejected).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.datasets import EvalPair, eval_set_hash
from pipeline.models import load_causal_lm, load_tokenizer, pick_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SequenceScores:
    """Per answer: summed log-probability of its tokens and how many tokens there were."""

    logp: list[float]
    n_tokens: list[int]

    def mean(self, i: int) -> float:
        return self.logp[i] / max(self.n_tokens[i], 1)


@dataclass(frozen=True)
class EvalReport:
    n_pairs: int
    eval_set_hash: str
    pref_accuracy_reference: float
    pref_accuracy_candidate: float
    reward_accuracy: float
    reward_margin: float
    beta: float
    examples: list[dict[str, Any]]        # a few held-out pairs with both models' scores, for review

    @property
    def improvement(self) -> float:
        return self.pref_accuracy_candidate - self.pref_accuracy_reference

    def metrics(self) -> dict[str, float]:
        return {
            "eval_pref_accuracy_reference": self.pref_accuracy_reference,
            "eval_pref_accuracy_candidate": self.pref_accuracy_candidate,
            "eval_pref_accuracy_delta": self.improvement,
            "eval_reward_accuracy": self.reward_accuracy,
            "eval_reward_margin": self.reward_margin,
            "eval_pairs": float(self.n_pairs),
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "improvement": self.improvement, "metrics": self.metrics()}


def _encode(tokenizer, prompt: list[dict[str, str]], answer: str, max_length: int) -> tuple[list[int], int]:
    """Token ids of prompt + answer, and where the answer starts. Long prompts lose their oldest tokens."""
    prompt_ids = tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True)
    full_ids = tokenizer.apply_chat_template(
        prompt + [{"role": "assistant", "content": answer}], tokenize=True
    )
    prompt_ids, full_ids = _ids(prompt_ids), _ids(full_ids)
    start = len(prompt_ids) if full_ids[: len(prompt_ids)] == prompt_ids else _common_prefix(prompt_ids, full_ids)
    overflow = len(full_ids) - max_length
    if overflow > 0:
        cut = min(overflow, max(start - 1, 0))
        full_ids, start = full_ids[cut:], start - cut
        full_ids = full_ids[:max_length]
    return full_ids, start


def _ids(encoded: Any) -> list[int]:
    # transformers 5 returns a BatchEncoding (dict-like) from apply_chat_template(tokenize=True).
    if hasattr(encoded, "keys") and "input_ids" in encoded:
        encoded = encoded["input_ids"]
    return list(encoded)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@torch.no_grad()
def score_answers(model, tokenizer, prompts: list[list[dict[str, str]]], answers: list[str], *,
                  batch_size: int, max_length: int, device: str,
                  on_batch: Callable[[int], None] | None = None) -> SequenceScores:
    """Summed log-probabilities of each answer given its prompt (teacher forcing, batched, right-padded)."""
    encoded = [_encode(tokenizer, p, a, max_length) for p, a in zip(prompts, answers, strict=True)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    logps, counts = [], []
    for lo in range(0, len(encoded), batch_size):
        chunk = encoded[lo: lo + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        answer_mask = torch.zeros((len(chunk), width), dtype=torch.bool)
        for row, (ids, start) in enumerate(chunk):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = 1
            answer_mask[row, start: len(ids)] = True
        input_ids, attention, answer_mask = input_ids.to(device), attention.to(device), answer_mask.to(device)
        logits = model(input_ids=input_ids, attention_mask=attention).logits.float()
        token_logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
        mask = answer_mask[:, 1:]
        logps += (token_logp * mask).sum(-1).tolist()
        counts += mask.sum(-1).tolist()
        if on_batch:
            on_batch(len(chunk))
    return SequenceScores(logps, counts)


def evaluate_candidate(candidate_dir: Path, base_dir: Path, pairs: list[EvalPair], *, beta: float,
                       batch_size: int, max_length: int, device: str = "auto",
                       on_progress: Callable[[int, int], None] | None = None) -> EvalReport:
    """Score reference (base) and candidate on the same held-out pairs.

    on_progress(done, total) is called after each batch, counting answers scored by both models.
    """
    if not pairs:
        raise ValueError("no held-out pairs to evaluate on")
    device = pick_device(device)
    tokenizer = load_tokenizer(base_dir)  # training never changes the tokenizer
    prompts = [p.prompt for p in pairs] * 2
    answers = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    total, done = 2 * len(answers), 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if on_progress:
            on_progress(done, total)

    kw = dict(batch_size=batch_size, max_length=max_length, device=device, on_batch=advance)

    if (candidate_dir / "adapter_config.json").exists():
        from peft import PeftModel

        model = PeftModel.from_pretrained(load_causal_lm(base_dir, device=device), str(candidate_dir)).eval()
        candidate = score_answers(model, tokenizer, prompts, answers, **kw)
        with model.disable_adapter():
            reference = score_answers(model, tokenizer, prompts, answers, **kw)
    else:
        reference = score_answers(load_causal_lm(base_dir, device=device).eval(), tokenizer, prompts, answers, **kw)
        candidate = score_answers(load_causal_lm(candidate_dir, device=device).eval(), tokenizer, prompts, answers, **kw)

    n = len(pairs)
    ref_wins = [reference.mean(i) > reference.mean(n + i) for i in range(n)]
    cand_wins = [candidate.mean(i) > candidate.mean(n + i) for i in range(n)]
    rewards = [beta * (candidate.logp[i] - reference.logp[i]) for i in range(2 * n)]
    margins = [rewards[i] - rewards[n + i] for i in range(n)]
    examples = [
        {"prompt": pairs[i].prompt[-1]["content"], "chosen": pairs[i].chosen, "rejected": pairs[i].rejected,
         "reference_prefers_chosen": ref_wins[i], "candidate_prefers_chosen": cand_wins[i],
         "reward_margin": round(margins[i], 4)}
        for i in range(min(n, 8))
    ]
    report = EvalReport(
        n_pairs=n,
        eval_set_hash=eval_set_hash(pairs),
        pref_accuracy_reference=sum(ref_wins) / n,
        pref_accuracy_candidate=sum(cand_wins) / n,
        reward_accuracy=sum(m > 0 for m in margins) / n,
        reward_margin=sum(margins) / n if not any(math.isnan(m) for m in margins) else float("nan"),
        beta=beta,
        examples=examples,
    )
    log.info("evaluation: %s", report.metrics())
    return report
