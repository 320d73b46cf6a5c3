"""The compact training loop behind `alignloop bench methods`: TRL's losses on the tiny offline model.

DPOTrainer's sigmoid, ipo and robust losses and KTOTrainer's kto (with its detached KL baseline from
mismatched answers), in a full-weight loop of a few dozen lines: on a model this small the Trainer's
own setup would cost far more than the training (`--trainer trl` checks the loop against it). Every
arm of a regime and seed starts from the same base, reads the same rows in shuffled epochs as TRL's
Trainer does, and is scored on the same held-out pairs with the same reference log-probabilities.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any

from alignloop.benchmarks.regimes import Regime, heldout_pairs
from alignloop.methods import benchmark_arms

# The arms each registered method names (alignloop.methods): robust_dpo is DPO's robust loss.
ARMS = benchmark_arms()


@dataclass(frozen=True)
class Budget:
    """Equal compute for every arm of a regime: steps of pairs_per_step pairs (a pair is two sequences;
    KTO reads twice as many unpaired rows). steps None: the regime's passes over its data, bounded."""

    steps: int | None = None
    pairs_per_step: int = 8
    min_steps: int = 20
    max_steps: int = 100
    learning_rate: float = 1e-3
    max_length: int = 48
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    heldout: int = 200

    def steps_for(self, regime: Regime) -> int:
        if self.steps is not None:
            return self.steps
        wanted = math.ceil(regime.epochs * regime.judgements / self.pairs_per_step)
        return min(max(wanted, self.min_steps), self.max_steps)


# ---------------------------------------------------------------------------------------- training
def _training_rows(regime: Regime, seed: int, budget: Budget) -> tuple[list[dict], list[dict]]:
    """(pairs incl. pairs from thumbs, unpaired incl. pairs as up/down) in TRL's conversational format."""
    from alignloop.conversions import pairs_from_thumbs

    unpaired, pairs = regime.build(seed)
    all_pairs = pairs.to_pylist() + (pairs_from_thumbs(unpaired).to_pylist() if unpaired.num_rows else [])

    def said(text: str) -> list[dict[str, str]]:
        return [{"role": "assistant", "content": text}]

    pref = [{"prompt": r["prompt"], "chosen": said(r["chosen"]), "rejected": said(r["rejected"])} for r in all_pairs]
    unp = [{"prompt": r["prompt"], "completion": said(r["completion"]), "label": bool(r["label"])}
           for r in unpaired.to_pylist()]
    for r in pairs.to_pylist():
        unp += [{"prompt": r["prompt"], "completion": said(r["chosen"]), "label": True},
                {"prompt": r["prompt"], "completion": said(r["rejected"]), "label": False}]
    rng = random.Random(seed)
    rng.shuffle(pref)
    rng.shuffle(unp)
    # Each arm draws steps x pairs_per_step pairs (twice as many unpaired rows); a sample a quarter
    # larger than that is all it could see, and keeps tokenising and reference scoring cheap.
    steps = budget.steps_for(regime)
    return pref[: math.ceil(1.25 * steps * budget.pairs_per_step)], \
        unp[: math.ceil(2.5 * steps * budget.pairs_per_step)]


def _encode_all(tokenizer, prompts, answers, max_length: int):
    """Right-padded ids, attention and answer masks for (prompt, answer) rows, as evaluation encodes them."""
    import torch

    from alignloop.evaluation.scoring import encode_answer

    enc = [encode_answer(tokenizer, p, a, max_length)[0] for p, a in zip(prompts, answers, strict=True)]
    width = max(len(ids) for ids, _ in enc)
    ids = torch.full((len(enc), width), tokenizer.pad_token_id, dtype=torch.long)
    attn = torch.zeros((len(enc), width), dtype=torch.long)
    mask = torch.zeros((len(enc), width), dtype=torch.bool)
    for row, (seq, start) in enumerate(enc):
        ids[row, : len(seq)] = torch.tensor(seq)
        attn[row, : len(seq)] = 1
        mask[row, start: len(seq)] = True
    return ids, attn, mask


def _logps(model, ids, attn, mask, rows=None, average: bool = False):
    """Summed (or per-token mean) log-probability of each row's answer tokens."""
    import torch

    if rows is not None:
        ids, attn, mask = ids[rows], attn[rows], mask[rows]
    logits = model(input_ids=ids, attention_mask=attn).logits.float()
    token = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    m = mask[:, 1:]
    total = (token * m).sum(-1)
    return total / m.sum(-1).clamp(min=1) if average else total


def _dpo_loss(arm: str, pol_c, pol_r, ref_c, ref_r, beta: float, smoothing: float):
    """TRL's DPOTrainer losses: sigmoid (DPO), ipo (on per-token mean log-probs), robust (cDPO)."""
    import torch.nn.functional as F

    logits = (pol_c - ref_c) - (pol_r - ref_r)
    if arm == "ipo":
        return ((logits - 1 / (2 * beta)) ** 2).mean()
    if arm == "robust_dpo":
        return ((-F.logsigmoid(beta * logits) * (1 - smoothing) + F.logsigmoid(-beta * logits) * smoothing)
                / (1 - 2 * smoothing)).mean()
    return (-F.logsigmoid(beta * logits)).mean()


def _kto_loss(pol, ref, labels, kl, beta: float, dw: float, uw: float):
    """TRL's KTOTrainer loss: 1 - sigmoid(beta (r - z)) for desirable rows, 1 - sigmoid(beta (z - r)) for
    undesirable, z the batch's detached KL estimate (mismatched prompt/answer pairs), clamped at 0."""
    import torch

    ratio = pol - ref
    losses = torch.where(labels, dw * (1 - torch.sigmoid(beta * (ratio - kl))),
                         uw * (1 - torch.sigmoid(beta * (kl - ratio))))
    return losses.mean()


def _encode_rows(tokenizer, pref: list[dict], unp: list[dict], held, max_length: int) -> dict[str, Any]:
    """Every sequence an arm reads or is scored on, encoded once (None for a kind with no rows)."""
    import torch

    def enc(prompts, answers):
        return _encode_all(tokenizer, prompts, answers, max_length) if prompts else None

    said = [r["prompt"] for r in pref]
    # Chosen then rejected answers in one tensor of one width: a step scores both halves in one forward pass.
    return {
        "pairs": enc(said + said, [r["chosen"][0]["content"] for r in pref]
                     + [r["rejected"][0]["content"] for r in pref]),
        "uu": enc([r["prompt"] for r in unp], [r["completion"][0]["content"] for r in unp]),
        "labels": torch.tensor([r["label"] for r in unp], dtype=torch.bool),
        "hc": enc([p for p, _, _ in held], [c for _, c, _ in held]),
        "hr": enc([p for p, _, _ in held], [r for _, _, r in held]),
    }


def _reference_logps(ref, data: dict[str, Any]) -> dict[str, Any]:
    """The reference's log-probabilities of every encoded sequence, once for all arms."""
    import torch

    out = {}
    with torch.no_grad():
        for key in ("pairs", "uu", "hc", "hr"):
            if data[key] is not None:
                out[key] = _logps(ref, *data[key])
        if data["pairs"] is not None:
            out["pairs_avg"] = _logps(ref, *data["pairs"], average=True)
    return out


def _train_arm(arm: str, base_dir: str, data, refs, ref, budget: Budget, steps: int, seed: int, smoothing: float,
               pad_id: int):
    """One arm's model after `steps` steps from the base, and its last loss."""
    import torch
    from transformers import AutoModelForCausalLM

    from alignloop.planner import DEFAULT_BETA, kto_weights

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir).train()
    opt = torch.optim.AdamW(model.parameters(), lr=budget.learning_rate)
    gen = torch.Generator().manual_seed(seed)
    labels = data["labels"]
    n_up = int(labels.sum())
    dw, uw = kto_weights(n_up, len(labels) - n_up)
    n_pairs = 0 if data["pairs"] is None else len(data["pairs"][0]) // 2
    read = _epochs(len(labels) if arm == "kto" else n_pairs, gen)
    uu, pairs = data["uu"], data["pairs"]
    for _ in range(steps):
        if arm == "kto":
            # As many sequences a step as a pair arm: 2 x pairs_per_step rows (the KL pass is extra, no grad).
            rows = read(2 * budget.pairs_per_step)
            with torch.no_grad():
                kl_ids = _mismatch(uu, rows, torch.roll(rows, 1), pad_id)
                kl = (_logps(model, *kl_ids) - _logps(ref, *kl_ids)).mean().clamp(min=0)
            loss = _kto_loss(_logps(model, *uu, rows=rows), refs["uu"][rows], labels[rows], kl, DEFAULT_BETA["kto"],
                             dw, uw)
        else:
            rows = read(budget.pairs_per_step)
            average = arm == "ipo"
            beta = DEFAULT_BETA["ipo" if arm == "ipo" else "dpo"]
            both = torch.cat([rows, rows + n_pairs])
            policy = _logps(model, *pairs, rows=both, average=average)
            ref_both = (refs["pairs_avg"] if average else refs["pairs"])[both]
            k = len(rows)
            loss = _dpo_loss(arm, policy[:k], policy[k:], ref_both[:k], ref_both[k:], beta, smoothing)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), float(loss.detach())


def _score(model, data, refs) -> tuple[float, float]:
    """(held-out accuracy, drift): the share of held-out pairs whose better answer gets the higher implicit
    reward (a tie counts half), and the mean per-token |log pi - log pi_ref| of the held-out answers."""
    import torch

    with torch.no_grad():
        lc, lr = _logps(model, *data["hc"]), _logps(model, *data["hr"])
    margins = (lc - refs["hc"]) - (lr - refs["hr"])
    accuracy = float(((margins > 0).float() + 0.5 * (margins == 0).float()).mean())
    tokens_c = data["hc"][2][:, 1:].sum(-1).clamp(min=1)
    tokens_r = data["hr"][2][:, 1:].sum(-1).clamp(min=1)
    drift = float(torch.cat([(lc - refs["hc"]).abs() / tokens_c, (lr - refs["hr"]).abs() / tokens_r]).mean())
    return accuracy, drift


def train_regime(base_dir: str, regime: Regime, seed: int, budget: Budget, smoothing: float) -> list[dict[str, Any]]:
    """Every arm on one regime and seed, from the same base model, rows and reference log-probs. An arm
    with no rows to read is not trained: it scores the base model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    pref, unp = _training_rows(regime, seed, budget)
    data = _encode_rows(tokenizer, pref, unp, heldout_pairs(budget.heldout, seed), budget.max_length)
    ref = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    refs = _reference_logps(ref, data)
    steps = budget.steps_for(regime)
    out = []
    for arm in ARMS:
        started = time.perf_counter()
        rows = len(unp) if arm == "kto" else len(pref)
        model, loss = (ref, None) if rows == 0 else \
            _train_arm(arm, base_dir, data, refs, ref, budget, steps, seed, smoothing, tokenizer.pad_token_id)
        accuracy, drift = _score(model, data, refs)
        out.append({"regime": regime.name, "seed": seed, "arm": arm, "accuracy": accuracy, "drift": drift,
                    "trained": rows > 0, "steps": steps if rows else 0, "rows": rows, "final_loss": loss,
                    "seconds": time.perf_counter() - started})
    return out


def _epochs(n: int, generator):
    """A reader of `k` row indices at a time from seeded shuffled epochs of n rows (TRL's Trainer's order)."""
    import torch

    pending: list[int] = []

    def read(k: int):
        while len(pending) < k:
            pending.extend(torch.randperm(n, generator=generator).tolist())
        batch = pending[:k]
        del pending[:k]
        return torch.tensor(batch)

    return read


def _mismatch(encoded, rows, answers_from, pad_id: int):
    """KTO's KL rows: each prompt with another row's answer (TRL pairs a batch with itself shifted by one)."""
    import torch

    ids, attn, mask = encoded
    out_ids, out_mask = [], []
    for i, j in zip(rows.tolist(), answers_from.tolist(), strict=True):
        p_end = int(mask[i].nonzero()[0]) if mask[i].any() else int(attn[i].sum())
        a = mask[j].nonzero().flatten()
        seq = torch.cat([ids[i, :p_end], ids[j, a]])
        out_ids.append(seq)
        out_mask.append(torch.cat([torch.zeros(p_end, dtype=torch.bool), torch.ones(len(a), dtype=torch.bool)]))
    width = max(len(s) for s in out_ids)
    ids_t = torch.full((len(out_ids), width), pad_id, dtype=torch.long)
    attn_t = torch.zeros((len(out_ids), width), dtype=torch.long)
    mask_t = torch.zeros((len(out_ids), width), dtype=torch.bool)
    for k, (s, m) in enumerate(zip(out_ids, out_mask, strict=True)):
        ids_t[k, : len(s)] = s
        attn_t[k, : len(s)] = 1
        mask_t[k, : len(m)] = m
    return ids_t, attn_t, mask_t


