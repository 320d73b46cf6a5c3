"""Label noise when no comparison was ever repeated: a cheap reward model's confident disagreements.

A logistic regression on word and word-pair counts (chosen minus rejected) is fitted on K-1
folds of the pairs (folds by prompt) and scores the held-out fold, so every pair gets a margin m from
a model that never saw its label. If the model's view of the truth is P(chosen is better | m) =
sigmoid(a*m), and a share eps of labels were flipped at random, then

    P(the label says chosen | m) = eps + (1 - 2*eps) * sigmoid(a*m),

whose floor where the model is confident (large |m|) is eps. (eps, a) are fitted by maximum
likelihood on the out-of-fold margins; the interval is a bootstrap over pairs.

It rests on one assumption: where the model is most sure, it is right. That holds when what decides
the better answer shows up in the answers' words (calibrated in BENCHMARKS.md "Methods" on synthetic
pairs with a hidden word rule, 5–40 % flips, no repeated comparison). It fails when the deciding
signal is not in the words (it depends on the prompt, or on facts): the model then misses pairs it
"should" get, and those read as flips, so the estimate is too high; with few pairs (< a few hundred)
the interval is wide. When the model finds no signal at all it says so instead of guessing.

Thumbs get the same estimate one answer at a time (estimate_from_thumbs): the model scores an answer's
words (with an intercept, as thumbs may be one-sided), m is its out-of-fold logit of a thumb up, and
P(the thumb says what it says | m) = eps + (1 - 2*eps) * sigmoid(a*m*sign) with sign +1 for up, -1 for
down: a flipped thumb turns the other way whichever it was, so the point where the model is unsure
stays at m = 0 and the same fit applies.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from alignloop.profile.noise import BOOTSTRAP_ROUNDS, NoiseEstimate

if TYPE_CHECKING:  # scipy is imported where the model is fitted: most profiles never fit it
    from scipy import sparse

FOLDS = 5
# The reward model's features: the most frequent words and word pairs (by how many answers hold them).
MAX_FEATURES = 1024
# Pairs beyond this are subsampled (evenly, by hash) so the estimate stays a few seconds on any snapshot.
MAX_PAIRS = 8000
# Strong shrinkage: with noisy labels a weakly regularised model fits the flips and its margins blur
# (calibration at 25 % flips: L2 1 -> out-of-fold agreement 61 %, interval 0.2-37 %; L2 30 -> 72 %, 23-29 %).
L2 = 30.0
# Fewest pairs for a model-based estimate the planner may act on. With few pairs or heavy noise the
# model is unsure everywhere and the fit can call the flips its own uncertainty, which shows as a wide
# interval: the planner acts only on where the whole interval lies (pipeline/planner.py).
MIN_PAIRS = 200
SIGNAL = "reward_model"
UNIT = "pairs, cross-fitted on 5 folds"
THUMBS_SIGNAL = "reward_model_thumbs"
THUMBS_UNIT = "thumbs, cross-fitted on 5 folds"
_WORD = re.compile(r"\w+")
# The grid the flip rate and the confidence scale are fitted on (profile likelihood; no optimiser needed).
_EPS_GRID = np.linspace(0.0, 0.498, 250)
_SCALE_GRID = np.exp(np.linspace(math.log(0.05), math.log(50.0), 48))
_BINS = 200


def _ngrams(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]


def _features(chosen: list[str], rejected: list[str]) -> sparse.csr_matrix:
    """Counts of the most frequent n-grams, chosen minus rejected (n pairs x <= MAX_FEATURES), sparse:
    an answer holds a few dozen of the features, so the fit's products cost that, not the full width."""
    from scipy import sparse

    grams_c, grams_r = [Counter(_ngrams(t)) for t in chosen], [Counter(_ngrams(t)) for t in rejected]
    df: Counter[str] = Counter()
    for g in grams_c + grams_r:
        df.update(g.keys())
    vocab = {g: i for i, (g, _) in enumerate(sorted(df.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_FEATURES])}
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for row, (gc, gr) in enumerate(zip(grams_c, grams_r, strict=True)):
        for grams, sign in ((gc, 1.0), (gr, -1.0)):
            for g, c in grams.items():
                if g in vocab:
                    rows.append(row)
                    cols.append(vocab[g])
                    vals.append(sign * c)
    # duplicate (row, col) entries (a gram in both answers) are summed, as the dense += / -= did
    return sparse.csr_matrix((vals, (rows, cols)), shape=(len(chosen), len(vocab)), dtype=np.float64)


def _fit_logistic(x: np.ndarray | sparse.csr_matrix, y: np.ndarray, l2: float | None = None,
                  iterations: int = 300) -> np.ndarray:
    """L2-regularised logistic regression without intercept, by accelerated gradient descent."""
    l2 = L2 if l2 is None else l2
    n, d = x.shape
    # Step 1/L with L the gradient's Lipschitz bound: ||X||^2 / (4n) + l2/n, ||X|| by power iteration.
    v = np.ones(d) / math.sqrt(d)
    for _ in range(30):
        v = x.T @ (x @ v)
        v /= np.linalg.norm(v) or 1.0
    lipschitz = float(np.linalg.norm(x @ v) ** 2) / (4 * n) + l2 / n
    step = 1.0 / lipschitz
    w = z = np.zeros(d)
    t = 1.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ z, -30, 30)))
        grad = x.T @ (p - y) / n + l2 * z / n
        w_next = z - step * grad
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        z = w_next + (t - 1) / t_next * (w_next - w)
        w, t = w_next, t_next
    return w


def out_of_fold_margins(prompts: list[str], chosen: list[str], rejected: list[str], folds: int = FOLDS,
                        seed: int = 0) -> np.ndarray:
    """Margin of chosen over rejected for every pair, each from a model fitted on the other folds."""
    from scipy import sparse

    x = _features(chosen, rejected)
    n = len(chosen)
    rng = np.random.default_rng(seed)
    # Each row is shown in a random orientation, so both classes exist and the model needs no intercept.
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    return _cross_fitted(sparse.diags(sign) @ x, (sign > 0).astype(float), prompts, folds, scored=x)


def _cross_fitted(x, y: np.ndarray, prompts: list[str], folds: int, scored=None) -> np.ndarray:
    """Each row's margin (rows of `scored`, by default x) from a logistic model fitted on the other folds."""
    from threadpoolctl import threadpool_limits

    scored = x if scored is None else scored
    # Folds by prompt: answers to one prompt share words, which would leak across folds otherwise.
    fold = np.array([zlib.crc32(p.encode()) % folds for p in prompts])
    margins = np.zeros(len(y))
    # Small matrices: BLAS threads only contend with each other, so one thread is the fastest.
    with threadpool_limits(1):
        for f in range(folds):
            train, test = fold != f, fold == f
            if not test.any() or not train.any():
                continue
            w = _fit_logistic(x[train], y[train])
            margins[test] = scored[test] @ w
    return margins


def out_of_fold_thumb_margins(prompts: list[str], completions: list[str], up: np.ndarray,
                              folds: int = FOLDS) -> np.ndarray:
    """Out-of-fold logit of a thumb up for every answer, from its words and an intercept."""
    from scipy import sparse

    x = _features(completions, [""] * len(completions))
    x = sparse.hstack([x, np.ones((len(completions), 1))], format="csr")
    return _cross_fitted(x, up.astype(float), prompts, folds)


def _auc(scores: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """Area under the ROC curve of `scores` for the `positive` rows, and its standard error under no
    signal (Mann-Whitney: sqrt((n1 + n0 + 1) / (12 n1 n0)))."""
    from scipy.stats import rankdata

    n1, n0 = int(positive.sum()), int((~positive).sum())
    if not n1 or not n0:
        return 0.5, 1.0
    ranks = rankdata(scores)
    auc = (ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
    return float(auc), math.sqrt((n1 + n0 + 1) / (12 * n1 * n0))


def _binned(margins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Margins as (bin centres, index of each margin's bin): the likelihood only needs the bins."""
    m = margins / (float(np.std(margins)) or 1.0)
    edges = np.quantile(m, np.linspace(0, 1, _BINS + 1))
    idx = np.clip(np.searchsorted(edges, m, side="right") - 1, 0, _BINS - 1)
    centres = np.array([m[idx == b].mean() if (idx == b).any() else 0.0 for b in range(_BINS)])
    return centres, idx


def _log_lik_table(centres: np.ndarray) -> np.ndarray:
    """log P(label says chosen | margin bin) for every (eps, scale) on the grid: (grid, bins)."""
    sig = 1.0 / (1.0 + np.exp(-np.clip(_SCALE_GRID[:, None] * centres[None, :], -50, 50)))   # (scales, bins)
    p = _EPS_GRID[:, None, None] + (1 - 2 * _EPS_GRID[:, None, None]) * sig[None, :, :]      # (eps, scales, bins)
    return np.log(np.clip(p, 1e-12, 1.0)).reshape(-1, len(centres))


def _best_eps(counts: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The maximum-likelihood eps for each row of bin counts (rounds, bins)."""
    best = np.argmax(counts @ table.T, axis=1)
    return _EPS_GRID[best // len(_SCALE_GRID)]


def fit_flip_rate(margins: np.ndarray, rounds: int = 0, seed: int = 0) -> tuple[float, np.ndarray]:
    """eps maximising sum log(eps + (1-2eps) sigmoid(a*m)) over the margins, and `rounds` bootstrap eps."""
    centres, idx = _binned(margins)
    table = _log_lik_table(centres)
    counts = np.bincount(idx, minlength=_BINS).astype(float)
    eps = float(_best_eps(counts[None, :], table)[0])
    rng = np.random.default_rng(seed)
    boot = _best_eps(rng.multinomial(len(margins), counts / counts.sum(), size=rounds).astype(float), table) \
        if rounds else np.array([])
    return eps, boot


def estimate_from_pairs(prompts: list[str], chosen: list[str], rejected: list[str], *,
                        min_pairs: int = MIN_PAIRS, rounds: int = BOOTSTRAP_ROUNDS,
                        seed: int = 0) -> NoiseEstimate:
    """The model-based flip rate of these pairs, with a bootstrap interval over pairs."""
    if len(chosen) > MAX_PAIRS:
        keep = sorted(range(len(chosen)), key=lambda i: zlib.crc32(f"{prompts[i]}|{chosen[i]}|{rejected[i]}".encode()))
        keep = sorted(keep[:MAX_PAIRS])
        prompts, chosen, rejected = ([v[i] for i in keep] for v in (prompts, chosen, rejected))
    n = len(chosen)
    if n < 20 or len(set(prompts)) < FOLDS:
        return NoiseEstimate(SIGNAL, None, None, None, n, UNIT, False, "too few pairs to cross-fit a reward model")
    margins = out_of_fold_margins(prompts, chosen, rejected, seed=seed)
    agree = float((margins > 0).mean())
    if agree <= 0.5 + 2.0 * math.sqrt(0.25 / n):
        # Out-of-fold the model agrees with the labels no more than chance would: it learned no rule,
        # so its disagreements say nothing about flips.
        return NoiseEstimate(SIGNAL, None, None, None, n, UNIT, False,
                             f"the reward model found no signal in the answers' words (agrees with {100 * agree:.0f}% "
                             "of labels out of fold)")
    return _fitted(SIGNAL, UNIT, margins, f"out of fold it agrees with {100 * agree:.0f}% of labels", min_pairs,
                   "pairs", rounds, seed)


def _fitted(signal: str, unit: str, margins: np.ndarray, detail: str, min_rows: int, noun: str, rounds: int,
            seed: int) -> NoiseEstimate:
    """The flip rate fitted on out-of-fold margins signed so that positive agrees with the label, with its
    bootstrap interval; acted on from min_rows rows."""
    eps, boot = fit_flip_rate(margins, rounds=rounds, seed=seed)
    lo, hi = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
    lo, hi = min(lo, eps), max(hi, eps)
    n = len(margins)
    if n < min_rows:
        detail += f"; fewer than {min_rows} {noun}, too few to act on"
    return NoiseEstimate(signal, eps, lo, hi, n, unit, n >= min_rows, detail)


def estimate_from_thumbs(prompts: list[str], completions: list[str], up: list[bool], *,
                         min_thumbs: int = MIN_PAIRS, rounds: int = BOOTSTRAP_ROUNDS,
                         seed: int = 0) -> NoiseEstimate:
    """The model-based flip rate of thumbs (an answer's thumb turned the other way), with a bootstrap
    interval over thumbs; estimate_from_thumbs_table samples a large table first. Calibrated in
    BENCHMARKS.md ("The noise estimate") on synthetic thumbs."""
    n = len(completions)
    labels = np.asarray(up, dtype=bool)
    if n < 20 or len(set(prompts)) < FOLDS or labels.all() or not labels.any():
        return NoiseEstimate(THUMBS_SIGNAL, None, None, None, n, THUMBS_UNIT, False,
                             "too few thumbs (or only one verdict) to cross-fit a reward model")
    margins = out_of_fold_thumb_margins(prompts, completions, labels)
    auc, se = _auc(margins, labels)
    if auc <= 0.5 + 2.0 * se:
        return NoiseEstimate(THUMBS_SIGNAL, None, None, None, n, THUMBS_UNIT, False,
                             f"the reward model found no signal in the answers' words (out-of-fold AUC {auc:.2f})")
    return _fitted(THUMBS_SIGNAL, THUMBS_UNIT, np.where(labels, margins, -margins), f"out-of-fold AUC {auc:.2f}",
                   min_thumbs, "thumbs", rounds, seed)


# What a sample of a large table is chosen by: the md5 of each row's content, computed in DuckDB.
_PAIRS_HASH = "md5(to_json(prompt)::VARCHAR || chr(31) || chosen || chr(31) || rejected)"
_THUMBS_HASH = "md5(to_json(prompt)::VARCHAR || chr(31) || completion || chr(31) || label::VARCHAR)"


def _over_table(table, columns: tuple[str, ...], hash_sql: str, noun: str, estimate) -> NoiseEstimate:
    """`estimate(table)` over a canonical table. A table of more than MAX_PAIRS rows is sampled before any row
    becomes a Python object: the MAX_PAIRS with the smallest content hash, in their table order, and the
    estimate says so."""
    total = table.num_rows
    if total > MAX_PAIRS:
        table = _sample_rows(table, MAX_PAIRS, columns, hash_sql)
    est = estimate(table)
    if total > MAX_PAIRS:
        est = replace(est, detail=f"{est.detail}; a hash-chosen sample of {est.support} of {total} {noun}")
    return est


def estimate_from_thumbs_table(thumbs) -> NoiseEstimate:
    """estimate_from_thumbs over a canonical thumbs table (prompt, completion, label), sampled when large."""
    return _over_table(thumbs, ("prompt", "completion", "label"), _THUMBS_HASH, "thumbs", lambda t: estimate_from_thumbs(
        prompt_texts(t), t.column("completion").to_pylist(), t.column("label").to_pylist()))


def estimate_from_table(pairs) -> NoiseEstimate:
    """estimate_from_pairs over a canonical pairs table (prompt conversations flattened to text), sampled
    when large."""
    return _over_table(pairs, ("prompt", "chosen", "rejected"), _PAIRS_HASH, "pairs", lambda t: estimate_from_pairs(
        prompt_texts(t), t.column("chosen").to_pylist(), t.column("rejected").to_pylist()))


def sample_pairs(pairs, n: int):
    """The n pairs with the smallest md5 of (prompt, chosen, rejected), in table order: the same
    snapshot always gives the same sample, and no row is turned into Python objects to choose it."""
    return _sample_rows(pairs, n, ("prompt", "chosen", "rejected"), _PAIRS_HASH)


def _sample_rows(table, n: int, columns: tuple[str, ...], hash_sql: str):
    """The n rows of `columns` with the smallest `hash_sql` (ties by position), in table order, chosen in DuckDB."""
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    try:
        con.execute("SET threads = 1")
        con.register("rows_in", table.select(list(columns)).append_column(
            "row_index", pa.array(range(table.num_rows), type=pa.int64())))
        keep = con.execute(f"SELECT row_index FROM rows_in ORDER BY {hash_sql}, row_index LIMIT $n",
                           {"n": n}).fetchnumpy()["row_index"]
    finally:
        con.close()
    return table.take(np.sort(keep))


def prompt_texts(pairs) -> list[str]:
    """Each prompt as json.dumps(prompt, ensure_ascii=False) writes it, computed in DuckDB from the Arrow
    column rather than through a dict per turn (sql/holdout_macros.sql)."""
    import duckdb

    from alignloop.sqlfiles import sql_text

    con = duckdb.connect()
    try:
        con.execute("SET threads=1")
        con.execute(sql_text("holdout_macros.sql"))
        con.register("prompts_in", pairs.select(["prompt"]))
        return con.execute("SELECT prompt_json_py_turns(prompt) FROM prompts_in").to_arrow_table().column(0).to_pylist()
    finally:
        con.close()
