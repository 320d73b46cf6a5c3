"""Teacher-forced log-likelihoods, fast: tokenise once, batch by length, no gradients, cached reference.

A held-out pair is two sequences, prompt + chosen and prompt + rejected, tokenised and fitted to
`max_length` exactly as training fits a pair (alignloop.tokenize: the shared prompt loses its oldest
tokens for the longer answer, then an answer too long alone loses its end). Each distinct sequence is
scored once (a prompt's pairs share answers), all answers of a prompt in the same batch, and batches
are formed longest first so little is padding. The reference's scores depend only on the base model
and the evaluation set, so they are cached on disk per (base model, eval-set hash, max_length).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from alignloop.datasets import EvalPair
from alignloop.models import load_causal_lm
from alignloop.tokenize import _ids, encode_turns, truncate_pair

# One sequence ready to score: its token ids and where the scored part starts.
Encoded = tuple[list[int], int]
# Bump when the way sequences are encoded or scored changes, so cached scores are recomputed.
# 3: a pair's answers share the prompt trimmed for the longer one (training's truncate_pair).
# 4: the perplexity guard caches per-token log-probabilities (for its interval).
# 5: only the scored positions go through the LM head (TRL's fused head): the same scores within float rounding.
SCORING_VERSION = 5


@dataclass(frozen=True)
class EncodedPairs:
    """The held-out pairs tokenised once, shared by every model scored on them.

    Pairs of one prompt share answers (four answers make six pairs), so each distinct sequence of token
    ids is kept, and scored, once; pairs point at their two sequences. (An answer to a prompt too long
    for max_length can differ between its pairs: the prompt is trimmed for each pair's longer answer.)
    """

    sequences: list[Encoded]
    chosen_index: list[int]
    rejected_index: list[int]
    prompt_group: list[int]  # per sequence: which prompt it answers (sequences of a prompt share a batch)
    truncated: int           # pairs with at least one sequence shortened to max_length

    @property
    def chosen(self) -> list[Encoded]:
        return [self.sequences[i] for i in self.chosen_index]

    @property
    def rejected(self) -> list[Encoded]:
        return [self.sequences[i] for i in self.rejected_index]


@dataclass(frozen=True)
class PairScores:
    """Per pair: summed log-probability of each answer's tokens and how many tokens there were."""

    logp_chosen: list[float]
    logp_rejected: list[float]
    n_chosen: list[int]
    n_rejected: list[int]

    def prefers_chosen(self) -> list[float]:
        """1.0 where the mean per-token log-likelihood of chosen beats rejected's, else 0.0."""
        return [float(c / max(nc, 1) > r / max(nr, 1)) for c, r, nc, nr in
                zip(self.logp_chosen, self.logp_rejected, self.n_chosen, self.n_rejected, strict=True)]


def encode_answer(tokenizer, prompt: list[dict[str, str]], answer: str, max_length: int) -> tuple[Encoded, bool]:
    """Token ids of prompt + one answer (chat template) fitted to max_length, where the answer starts, and
    whether it was cut: what training feeds the model for an unpaired row."""
    prompt_ids, (answer_ids,) = encode_turns(tokenizer, prompt, [answer])
    kept, (kept_answer,) = truncate_pair(prompt_ids, [answer_ids], max_length)
    cut = len(kept) < len(prompt_ids) or len(kept_answer) < len(answer_ids)
    return (kept + kept_answer, len(kept)), cut


def encode_pairs(tokenizer, pairs: Sequence[EvalPair], max_length: int) -> EncodedPairs:
    """Each pair as training tokenises and truncates it (alignloop.tokenize: encode_turns, then truncate_pair,
    which trims the shared prompt for the longer answer); identical sequences are kept once."""
    from alignloop.schema import prompt_key

    index: dict[tuple[str, int, tuple[int, ...]], int] = {}
    groups: dict[str, int] = {}
    sequences: list[Encoded] = []
    prompt_group: list[int] = []
    chosen: list[int] = []
    rejected: list[int] = []
    truncated = 0

    def sequence(key: str, ids: list[int], start: int) -> int:
        at = (key, start, tuple(ids))
        if at not in index:
            index[at] = len(sequences)
            sequences.append((ids, start))
            prompt_group.append(groups.setdefault(key, len(groups)))
        return index[at]

    for p in pairs:
        key = prompt_key(p.prompt)
        prompt_ids, answers = encode_turns(tokenizer, p.prompt, [p.chosen, p.rejected])
        kept, fitted = truncate_pair(prompt_ids, answers, max_length)
        truncated += len(kept) < len(prompt_ids) or any(len(f) < len(a) for f, a in zip(fitted, answers, strict=True))
        chosen.append(sequence(key, kept + fitted[0], len(kept)))
        rejected.append(sequence(key, kept + fitted[1], len(kept)))
    return EncodedPairs(sequences, chosen, rejected, prompt_group, truncated)


def _pad_id(tokenizer_or_id) -> int:
    if isinstance(tokenizer_or_id, int):
        return tokenizer_or_id
    tok = tokenizer_or_id
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


def _batches(sequences: Sequence[Encoded], batch_size: int,
             groups: Sequence[Sequence[int]] | None) -> list[list[int]]:
    """Indices packed into batches of about batch_size, groups kept together, longest first."""
    groups = [list(g) for g in groups] if groups is not None else [[i] for i in range(len(sequences))]
    groups.sort(key=lambda g: -max(len(sequences[i][0]) for i in g))
    batches: list[list[int]] = [[]]
    for g in groups:
        if batches[-1] and len(batches[-1]) + len(g) > batch_size:
            batches.append([])
        batches[-1].extend(g)
    return [b for b in batches if b]


def _with_fused_head(model) -> None:
    """TRL's fused LM head (`add_fused_lm_head`) on the causal LM under `model` (a PEFT wrapper's base model),
    added once: called with labels and fused_lm_head=True, the model projects only the labelled positions
    through its LM head, so a long prompt's positions never become vocabulary-wide logits. Without that
    flag its forward is the original one (generation is unchanged)."""
    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not getattr(target, "_alignloop_fused_head", False):
        from trl.trainer.utils import add_fused_lm_head

        add_fused_lm_head(target)
        target._alignloop_fused_head = True


def right_padded(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids right-padded to the longest row, and the attention mask of the real tokens."""
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for row, ids in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[row, : len(ids)] = 1
    return input_ids, attention


def _token_logps(model, sequences: Sequence[Encoded], batch: list[int], *, pad_id: int, device: str):
    """One right-padded forward pass: each token's log-probability (0 where not scored) and the mask of scored
    tokens. Only the scored positions go through the LM head (TRL's fused head, compact on every device)."""
    from alignloop.training.fastpath import compact_lm_head

    input_ids, attention = right_padded([sequences[i][0] for i in batch], pad_id)
    labels = torch.full(input_ids.shape, -100, dtype=torch.long)
    for row, i in enumerate(batch):
        ids, start = sequences[i]
        first = max(start, 1)  # the first token has nothing to be predicted from
        labels[row, first: len(ids)] = torch.tensor(ids[first:], dtype=torch.long)
    input_ids, attention, labels = input_ids.to(device), attention.to(device), labels.to(device)
    _with_fused_head(model)
    with compact_lm_head():
        out = model(input_ids=input_ids, attention_mask=attention, labels=labels, fused_lm_head=True)
    return out.log_probs.float(), labels[:, 1:] != -100


@torch.inference_mode()
def score_sequences(model, sequences: Sequence[Encoded], *, pad_id: int, batch_size: int, device: str,
                    groups: Sequence[Sequence[int]] | None = None,
                    on_batch: Callable[[int], None] | None = None,
                    before_batch: Callable[[list[int]], None] | None = None) -> tuple[list[float], list[int]]:
    """Summed log-probability and token count of each sequence's scored part (from its start).

    `groups` lists indices that must share a batch (a pair's two answers); groups are sorted longest
    first and packed into batches of about `batch_size` sequences, right-padded. `before_batch` hears
    which sequences each forward pass runs (a feature hook's `expect`).
    """
    logps = [0.0] * len(sequences)
    counts = [0] * len(sequences)
    for batch in _batches(sequences, batch_size, groups):
        if before_batch:
            before_batch(batch)
        token_logp, mask = _token_logps(model, sequences, batch, pad_id=pad_id, device=device)
        for row, (lp, n) in enumerate(zip((token_logp * mask).sum(-1).tolist(), mask.sum(-1).tolist(), strict=True)):
            logps[batch[row]], counts[batch[row]] = lp, int(n)
        if on_batch:
            on_batch(len(batch))
    return logps, counts


@torch.inference_mode()
def token_logprobs(model, sequences: Sequence[Encoded], *, pad_id: int, batch_size: int,
                   device: str) -> list[list[float]]:
    """Each sequence's scored tokens' log-probabilities, in order."""
    out: list[list[float]] = [[] for _ in sequences]
    for batch in _batches(sequences, batch_size, None):
        token_logp, mask = _token_logps(model, sequences, batch, pad_id=pad_id, device=device)
        for row, i in enumerate(batch):
            out[i] = token_logp[row][mask[row]].tolist()
    return out


def score_pairs(model, encoded: EncodedPairs, *, pad_id: int, batch_size: int, device: str,
                on_batch: Callable[[int], None] | None = None,
                before_batch: Callable[[list[int]], None] | None = None) -> PairScores:
    """Score every distinct answer once, the answers of one prompt in one batch; read pairs off them."""
    by_prompt: dict[int, list[int]] = {}
    for i, g in enumerate(encoded.prompt_group):
        by_prompt.setdefault(g, []).append(i)
    groups = [members[lo: lo + batch_size] for members in by_prompt.values()
              for lo in range(0, len(members), batch_size)]
    logp, count = score_sequences(model, encoded.sequences, pad_id=pad_id, batch_size=batch_size, device=device,
                                  groups=groups, on_batch=on_batch, before_batch=before_batch)
    return PairScores([logp[i] for i in encoded.chosen_index], [logp[i] for i in encoded.rejected_index],
                      [count[i] for i in encoded.chosen_index], [count[i] for i in encoded.rejected_index])


def text_logprobs(model, tokenizer, text: str, *, max_length: int, batch_size: int, device: str) -> list[float]:
    """Log-probability of every predicted token of `text`, cut into consecutive windows of max_length tokens."""
    ids = _ids(tokenizer(text, add_special_tokens=False))
    windows = [(ids[i: i + max_length], 0) for i in range(0, len(ids), max_length) if len(ids[i: i + max_length]) > 1]
    if not windows:
        raise ValueError("the perplexity text is shorter than two tokens")
    per_window = token_logprobs(model, windows, pad_id=_pad_id(tokenizer), batch_size=batch_size, device=device)
    return [lp for window in per_window for lp in window]


def perplexity(model, tokenizer, text: str, *, max_length: int, batch_size: int, device: str) -> float:
    """Perplexity of `text` cut into consecutive windows of max_length tokens."""
    logps = text_logprobs(model, tokenizer, text, max_length=max_length, batch_size=batch_size, device=device)
    return math.exp(-sum(logps) / len(logps))


def model_identity(folder: Path) -> str:
    """A short fingerprint of a model folder: its config and the names, sizes and times of its weights."""
    folder = Path(folder)
    parts: list[Any] = [str(folder.resolve())]
    config = folder / "config.json"
    parts.append(config.read_text() if config.exists() else "")
    for f in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        st = f.stat()
        parts.append([f.name, st.st_size, st.st_mtime_ns])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


class ScoreCache:
    """Reference scores on disk, one JSON file per key; a missing or unreadable file is a miss."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = Path(folder) if folder is not None else None

    @staticmethod
    def key(*parts: Any) -> str:
        return hashlib.sha256(json.dumps([SCORING_VERSION, *parts], default=str).encode()).hexdigest()[:24]

    def get(self, key: str) -> dict[str, Any] | None:
        if self.folder is None:
            return None
        path = self.folder / f"{key}.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._write(f"{key}.json", lambda f: f.write(json.dumps(value).encode()))

    def _write(self, name: str, write: Callable[[Any], Any]) -> None:
        """`write(file)` into a temporary file, then renamed to `name`: readers never see half a file."""
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{name}.tmp"
        with open(tmp, "wb") as f:
            write(f)
        tmp.replace(self.folder / name)

    def get_array(self, key: str):
        """A numpy array stored under `key` (features), or None."""
        import numpy as np

        if self.folder is None:
            return None
        try:
            return np.load(self.folder / f"{key}.npy", allow_pickle=False)
        except (OSError, ValueError):
            return None

    def put_array(self, key: str, value) -> None:
        import numpy as np

        self._write(f"{key}.npy", lambda f: np.save(f, value, allow_pickle=False))

    def get_pair_scores(self, key: str) -> PairScores | None:
        found = self.get(key)
        return PairScores(**found) if found is not None else None

    def put_pair_scores(self, key: str, scores: PairScores) -> None:
        self.put(key, asdict(scores))


class ModelSet:
    """The models an evaluation compares, loaded once each: candidate, reference (the base), champion.

    A LoRA candidate is loaded over the base, and the reference is that same model with its adapter
    switched off, so one copy of the base weights serves both. Every model runs in one `precision`
    (evaluation.precision resolved): on a GPU bfloat16 weights; on a CPU float32 weights with the scoring
    passes autocast to bfloat16, while answers are generated in float32 (autocast would re-cast every weight
    at each new token, slower there, and greedy answers would then hinge on bfloat16 rounding).
    """

    def __init__(self, candidate_dir: Path, base_dir: Path, champion_dir: Path | None, device: str,
                 precision: str = "float32") -> None:
        self.candidate_dir, self.base_dir, self.champion_dir = Path(candidate_dir), Path(base_dir), champion_dir
        self.device = device
        self.precision = precision
        self._loaded: dict[str, Any] = {}

    @staticmethod
    def _is_adapter(folder: Path) -> bool:
        return (Path(folder) / "adapter_config.json").exists()

    def _load(self, folder: Path):
        float32 = self.precision == "float32"
        if self._is_adapter(folder):
            from peft import PeftModel

            base = load_causal_lm(self.base_dir, device=self.device, float32=float32)
            return PeftModel.from_pretrained(base, str(folder)).eval()
        return load_causal_lm(folder, device=self.device, float32=float32).eval()

    @property
    def generation_precision(self) -> str:
        """The number format answers are generated in: the weights' own (float32 on a CPU, never autocast)."""
        return self.precision if self.device.startswith("cuda") else "float32"

    @contextmanager
    def use(self, name: str, *, generating: bool = False):
        """The model named candidate, reference or champion, ready for inference in the set's precision
        (`generating`: for generate(), in generation_precision)."""
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=(
            not generating and self.precision != self.generation_precision))
        if name == "reference" and self._is_adapter(self.candidate_dir):
            model = self._get("candidate", self.candidate_dir)
            with model.disable_adapter(), autocast:
                yield model
            return
        folder = {"candidate": self.candidate_dir, "reference": self.base_dir, "champion": self.champion_dir}[name]
        if folder is None:
            raise ValueError(f"no {name} model to use")
        model = self._get(name, Path(folder))
        with autocast:
            yield model

    def _get(self, name: str, folder: Path):
        if name not in self._loaded:
            self._loaded[name] = self._load(folder)
        return self._loaded[name]
