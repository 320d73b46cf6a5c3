"""Answers the models write themselves on held-out prompts: for side-by-side samples, the judge's
win rate, answer length drift, degenerate answers, and the KL estimate (which needs answers sampled
from the candidate). Batched with left padding; each batch decodes with the model's KV cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from alignloop.evaluation.scoring import Encoded, _ids


@dataclass(frozen=True)
class Generated:
    """Answers to prompts in order: their text, the prompt's token ids, the answer's token ids, and
    whether the model ended the answer itself (False: cut off at max_new_tokens)."""

    texts: list[str]
    prompt_ids: list[list[int]]
    answer_ids: list[list[int]]
    stopped: list[bool]

    def as_scored(self) -> list[Encoded]:
        """prompt + answer with the answer as the scored part, for teacher-forced scoring."""
        return [(p + a, len(p)) for p, a in zip(self.prompt_ids, self.answer_ids, strict=True)]

    def mean_tokens(self) -> float:
        return sum(len(a) for a in self.answer_ids) / max(len(self.answer_ids), 1)


@torch.inference_mode()
def generate_answers(model, tokenizer, prompts: Sequence[list[dict[str, str]]], *, max_new_tokens: int,
                     batch_size: int, device: str, sample: bool = False, seed: int = 0,
                     max_prompt_tokens: int = 512) -> Generated:
    """Greedy (or sampled, temperature 1) answers, batched with left padding; stops at the eos token."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = tokenizer.eos_token_id
    encoded = [_ids(tokenizer.apply_chat_template(p, tokenize=True, add_generation_prompt=True))[-max_prompt_tokens:]
               for p in prompts]
    texts, answers, stopped = [""] * len(prompts), [[] for _ in prompts], [False] * len(prompts)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # sampled answers are reproducible; the caller's random stream is restored below
    try:
        for lo in range(0, len(encoded), batch_size):
            chunk = encoded[lo: lo + batch_size]
            width = max(len(ids) for ids in chunk)
            input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            attention = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, ids in enumerate(chunk):
                input_ids[row, width - len(ids):] = torch.tensor(ids)
                attention[row, width - len(ids):] = 1
            out = model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                                 max_new_tokens=max_new_tokens, do_sample=sample,
                                 temperature=1.0 if sample else None, top_p=1.0 if sample else None,
                                 top_k=0 if sample else None, pad_token_id=pad, eos_token_id=eos, use_cache=True)
            for row, new in enumerate(out[:, width:].tolist()):
                if eos in new:
                    new = new[: new.index(eos) + 1]  # the eos is part of the answer: the model chose to stop
                    stopped[lo + row] = True
                while new and new[-1] == pad and pad != eos:
                    new.pop()
                answers[lo + row] = new
                texts[lo + row] = tokenizer.decode(new, skip_special_tokens=True).strip()
    finally:
        torch.random.set_rng_state(generator_state)
    return Generated(texts, encoded, answers, stopped)
