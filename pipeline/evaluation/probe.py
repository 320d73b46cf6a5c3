"""A judge read off the reference model's own features: a linear reward head on frozen hidden states.

Each answer becomes the reference's last-layer hidden states, averaged over the answer's tokens and taken
at its last token. A Bradley-Terry model (logistic regression on the difference of two answers'
features, no intercept) learns from held-out pairs which direction in that space people prefer. It is
cross-fitted like the reward-model judge: held-out prompts fall into two folds by hash, a head is fitted
on each, and every prompt is judged by the head fitted on the other fold, so no prompt is judged by a
head that learned from it, and nothing is fitted on the candidate's training rows.

Why: fitting two LoRA reward models costs dozens of forward-and-backward passes per held-out pair,
more than scoring the pairs. The features come from the forward pass that scores the reference on the
held-out pairs anyway (evaluation/scoring.py), so the head costs a logistic fit, and judging an answer
one reference forward pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
import torch

# Ridge strengths tried, chosen per fold by an inner split of the fold's own prompts (never the judged fold).
L2_GRID = (1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0)


def decoder_of(model):
    """The transformer body under a causal LM (or a PEFT wrapper around one): its output's last_hidden_state
    is the final layer's, after the last norm, what the LM head reads."""
    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    return target.get_decoder()


def pool(hidden: torch.Tensor, lengths: Sequence[int], starts: Sequence[int]) -> torch.Tensor:
    """Per row: the mean of the answer's positions (start..length) and the last real position, side by side."""
    rows = []
    for row, (n, start) in enumerate(zip(lengths, starts, strict=True)):
        first = min(max(start, 0), n - 1)
        answer = hidden[row, first:n].float()
        rows.append(torch.cat([answer.mean(0), hidden[row, n - 1].float()]))
    return torch.stack(rows)


class FeatureHook:
    """Collects pooled features from every forward pass of `model`'s decoder while active (a forward hook),
    so the pass that scores a batch yields its features too. `expect(batch)` says which sequences the next
    pass runs."""

    def __init__(self, model, sequences: Sequence[tuple[list[int], int]]) -> None:
        self.sequences = sequences
        self.features: dict[int, np.ndarray] = {}
        self._batch: list[int] = []
        self._handle = decoder_of(model).register_forward_hook(self._take)

    def expect(self, batch: list[int]) -> None:
        self._batch = batch

    def _take(self, _module, _inputs, output) -> None:
        hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
        lengths = [len(self.sequences[i][0]) for i in self._batch]
        starts = [self.sequences[i][1] for i in self._batch]
        for i, f in zip(self._batch, pool(hidden, lengths, starts).cpu().numpy(), strict=True):
            self.features[i] = f

    def array(self) -> np.ndarray:
        """The features in sequence order; raises when a sequence never went through a pass."""
        if len(self.features) != len(self.sequences):
            raise RuntimeError(f"features of {len(self.features)} of {len(self.sequences)} sequences collected")
        return np.stack([self.features[i] for i in range(len(self.sequences))])

    def close(self) -> None:
        self._handle.remove()


@torch.inference_mode()
def answer_features(model, sequences: Sequence[tuple[list[int], int]], *, pad_id: int, batch_size: int,
                    device: str, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Pooled features of each sequence's answer part (from its start), one decoder pass per batch, longest
    first; no LM head."""
    from alignloop.evaluation.scoring import _batches, right_padded

    decoder = decoder_of(model)
    out = np.zeros((len(sequences), 2 * int(model.config.hidden_size)), dtype=np.float32)
    for batch in _batches(sequences, batch_size, None):
        ids, mask = right_padded([sequences[i][0] for i in batch], pad_id)
        hidden = decoder(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
        pooled = pool(hidden, [len(sequences[i][0]) for i in batch], [sequences[i][1] for i in batch])
        out[batch] = pooled.cpu().numpy()
        if on_batch:
            on_batch(len(batch))
    return out


def _fit(diffs: np.ndarray, l2: float) -> np.ndarray:
    """Weights of P(first preferred) = sigmoid(w . (f_first - f_second)), each pair shown both ways round so
    the model needs no intercept and cannot learn an order."""
    from alignloop.profile.reward_model import _fit_logistic

    x = np.concatenate([diffs, -diffs])
    y = np.concatenate([np.ones(len(diffs)), np.zeros(len(diffs))])
    return _fit_logistic(x, y, l2=l2, iterations=400)


def _log_loss(diffs: np.ndarray, w: np.ndarray) -> float:
    z = np.clip(diffs @ w, -30, 30)
    return float(np.mean(np.log1p(np.exp(-z))))


def fit_head(diffs: np.ndarray, groups: Sequence[str]) -> tuple[np.ndarray, np.ndarray, float]:
    """(scale, weights, l2) of a head fitted on `diffs` (chosen minus rejected features, one row per pair):
    features are divided by their spread on these pairs, and the ridge strength is the one with the lowest
    log-loss on a held-back half of these pairs' own prompts (`groups`)."""
    from threadpoolctl import threadpool_limits

    scale = diffs.std(axis=0)
    scale[scale < 1e-8] = 1.0
    x = diffs / scale
    half = np.array([hash_half(g) for g in groups])
    with threadpool_limits(1):  # small matrices: BLAS threads only contend
        best = L2_GRID[len(L2_GRID) // 2]
        if half.any() and (~half).any():
            losses = {l2: _log_loss(x[half], _fit(x[~half], l2)) + _log_loss(x[~half], _fit(x[half], l2))
                      for l2 in L2_GRID}
            best = min(losses, key=lambda k: (losses[k], -k))
        w = _fit(x, best)
    return scale, w, best


def hash_half(group: str) -> bool:
    """Which half of the inner split a prompt falls in, by hash (never the judge's own folds' hash)."""
    return int(hashlib.sha256(f"probe-inner:{group}".encode()).hexdigest()[:8], 16) % 2 == 1


class ProbeHead:
    """One fitted head: an answer's score is w . (features / scale)."""

    def __init__(self, scale: np.ndarray, weights: np.ndarray, l2: float, n_pairs: int) -> None:
        self.scale, self.weights, self.l2, self.n_pairs = scale, weights, l2, n_pairs

    def scores(self, features: np.ndarray) -> np.ndarray:
        return (features / self.scale) @ self.weights


Featurise = Callable[[Sequence[list[dict[str, str]]], Sequence[str]], np.ndarray]


class ProbeJudge:
    """Linear heads on the reference's features, cross-fitted on the held-out pairs the evaluation scores.

    Built before the evaluation (`build_judge`), fitted inside it from the features the reference's scoring
    pass collects (`fit`), then given a way to featurise new answers, the models' own (`attach`).
    """

    kind = "probe"

    def __init__(self, *, training_prompt_keys: frozenset[str] = frozenset()) -> None:
        self.heads: list[ProbeHead] = []
        self.n_fit_pairs = 0
        self.fitted_prompt_keys: frozenset[str] = frozenset()
        self.provenance = "a linear head on the reference model's features (not fitted yet)"
        self._training_prompt_keys = frozenset(training_prompt_keys)
        self._known: dict[tuple[str, str], np.ndarray] = {}
        self._featurise: Featurise | None = None

    def fit(self, pairs: Sequence, chosen: np.ndarray, rejected: np.ndarray) -> bool:
        """Fit one head per fold on the pairs outside it; False (and unfitted) when a fold would learn from
        fewer than MIN_FIT_PAIRS pairs. Raises when a pair's prompt is one the candidate trained on."""
        from alignloop.errors import DataError
        from alignloop.evaluation.folds import FOLDS, MIN_FIT_PAIRS, judge_fold
        from alignloop.schema import prompt_key

        keys = [prompt_key(p.prompt) for p in pairs]
        shared = set(keys) & self._training_prompt_keys
        if shared:
            raise DataError(
                f"the judge's head would be fitted on {len(shared)} prompts the candidate trained on, so its win "
                "rate would reward what the candidate learned; fit it on held-out prompts only")
        fold = np.array([judge_fold(p.prompt) for p in pairs])
        diffs = chosen - rejected
        if min(int((fold != k).sum()) for k in range(FOLDS)) < MIN_FIT_PAIRS:
            return False
        self.heads = []
        for k in range(FOLDS):
            on = np.flatnonzero(fold != k)
            scale, weights, l2 = fit_head(diffs[on], [keys[i] for i in on])
            self.heads.append(ProbeHead(scale, weights, l2, len(on)))
        for p, key, f_c, f_r in zip(pairs, keys, chosen, rejected, strict=True):
            self._known[(key, p.chosen)], self._known[(key, p.rejected)] = f_c, f_r
        self.n_fit_pairs = len(pairs)
        self.fitted_prompt_keys = frozenset(keys)
        self.provenance = (
            f"linear heads on the reference model's features, cross-fitted on {len(pairs)} held-out pairs over "
            f"{len(set(keys))} prompts in {FOLDS} folds (ridge {', '.join(f'{h.l2:g}' for h in self.heads)}, chosen "
            "on each fold's own prompts); each prompt judged by the head fitted on the other fold, none fitted on "
            "the candidate's training rows")
        return True

    def attach(self, featurise: Featurise) -> None:
        """How answers the fit did not see (the models' own) become features: the reference's forward pass."""
        self._featurise = featurise

    def _features(self, prompts: Sequence[list[dict[str, str]]], answers: Sequence[str]) -> np.ndarray:
        from alignloop.schema import prompt_key

        keys = [(prompt_key(p), a) for p, a in zip(prompts, answers, strict=True)]
        todo: dict[tuple[str, str], int] = {}  # each unseen (prompt, answer) once
        for i, k in enumerate(keys):
            if k not in self._known:
                todo.setdefault(k, i)
        if todo:
            if self._featurise is None:
                raise RuntimeError("the probe judge cannot read new answers: attach() was not called")
            found = self._featurise([prompts[i] for i in todo.values()], [answers[i] for i in todo.values()])
            for k, f in zip(todo, found, strict=True):
                self._known[k] = f
        return np.stack([self._known[k] for k in keys]) if keys else np.zeros((0, 1))

    def prefer(self, prompts, first, second) -> list[float]:
        from alignloop.evaluation.folds import judge_fold

        if not self.heads:
            raise RuntimeError("the probe judge was not fitted")
        a, b = self._features(prompts, first), self._features(prompts, second)
        out = []
        for i, p in enumerate(prompts):
            head = self.heads[judge_fold(p)]
            margin = float(head.scores(a[i] - b[i]))
            out.append(1.0 if margin > 0 else 0.0 if margin < 0 else 0.5)
        return out
