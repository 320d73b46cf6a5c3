"""`alignloop bench judge`: how well, and at what cost, each judge kind tells the preferred answer.

Both kinds alignloop can fit for itself are cross-fitted exactly as an evaluation fits them (two folds of
prompts by hash, every pair judged by the model fitted on the other fold) on the same pairs, and graded
on all of them: accuracy with a 95 % interval over prompts (per source too), and the seconds each part
took. The pairs are the validation split of the real feedback in ../shared/data (never the test split
the outcome benchmark reports), or the held-out pairs a run was evaluated on (`--run`, its
per_pair_scores.jsonl).

The probe's features here come from a pass of their own ("features"); inside an evaluation they come
from the pass that scores the reference anyway, so there its cost is the fit and the judging.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KINDS = ("probe", "reward_model")


@dataclass(frozen=True)
class JudgeBenchSetup:
    kinds: tuple[str, ...] = KINDS
    pairs: int = 400                    # validation pairs, whole prompts (ignored with run_dir)
    max_length: int = 624               # the outcome benchmark's trained length on these rows
    run_dir: Path | None = None         # judge a run's held-out pairs instead
    base_model: dict[str, Any] | None = None
    data_dir: Path | None = None
    cache_dir: Path | None = None


def load_pairs(setup: JudgeBenchSetup) -> tuple[list, list[str], str]:
    """(EvalPairs, their source names, where they came from)."""
    from alignloop.datasets import EvalPair

    if setup.run_dir is not None:
        from alignloop.errors import ConfigError

        path = Path(setup.run_dir) / "per_pair_scores.jsonl"
        try:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            pairs = [EvalPair(r["prompt"], r["chosen"], r["rejected"], int(r.get("votes", 1))) for r in rows]
        except OSError:
            raise ConfigError(f"--run: {path} cannot be read; name a run folder an evaluation wrote "
                              "(runs/<id> in the workdir)") from None
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"--run: {path} is not an evaluation's per-pair scores ({type(e).__name__}: {e}); "
                              "name a run folder an evaluation wrote") from None
        return pairs, ["run"] * len(pairs), f"the {len(pairs)} held-out pairs of {setup.run_dir}"
    from alignloop.benchmarks.outcome_data import default_data_dir, read_sources, sample_pairs, split_pairs

    rows = sample_pairs(split_pairs(read_sources(setup.data_dir or default_data_dir()))["validation"], setup.pairs,
                        salt="eval")
    pairs = [EvalPair(r["prompt"], r["chosen"], r["rejected"], 1) for r in rows]
    return pairs, [r["source"] for r in rows], f"{len(pairs)} validation pairs of the real feedback"


def _graded(verdicts: list[float], pairs: list, sources: list[str]) -> dict[str, Any]:
    from alignloop.evaluation.bootstrap import interval_or_point
    from alignloop.schema import prompt_key

    def iv(idx: list[int]) -> dict[str, Any]:
        got = interval_or_point([verdicts[i] for i in idx], [prompt_key(pairs[i].prompt) for i in idx],
                                n_samples=2000, seed=0)
        return {"accuracy": got.value, "ci_low": got.low if got.measured else None,
                "ci_high": got.high if got.measured else None, "pairs": len(idx),
                "prompts": len({prompt_key(pairs[i].prompt) for i in idx})}

    out = iv(list(range(len(pairs))))
    if len(set(sources)) > 1:
        out["by_source"] = {s: iv([i for i, x in enumerate(sources) if x == s]) for s in sorted(set(sources))}
    return out


def _probe(pairs: list, base_dir: Path, setup: JudgeBenchSetup, say: Callable[[str], None]) -> dict[str, Any]:
    from alignloop.evaluation.probe import ProbeJudge, answer_features
    from alignloop.evaluation.scoring import ModelSet, _pad_id, encode_pairs
    from alignloop.models import inference_precision, load_tokenizer

    tokenizer = load_tokenizer(base_dir)
    precision = inference_precision("auto", "cpu")  # evaluation.precision's default: the features an evaluation reads
    models = ModelSet(base_dir, base_dir, None, "cpu", precision)
    started = time.perf_counter()
    encoded = encode_pairs(tokenizer, pairs, setup.max_length)
    say(f"probe: the reference's features of {len(encoded.sequences)} answers ({precision})")
    with models.use("reference") as model:
        features = answer_features(model, encoded.sequences, pad_id=_pad_id(tokenizer), batch_size=8, device="cpu")
    featured = time.perf_counter()
    judge = ProbeJudge()
    if not judge.fit(pairs, features[encoded.chosen_index], features[encoded.rejected_index]):
        raise ValueError(f"{len(pairs)} pairs are too few to cross-fit a judge")
    fitted = time.perf_counter()
    verdicts = judge.prefer([p.prompt for p in pairs], [p.chosen for p in pairs], [p.rejected for p in pairs])
    return {"verdicts": verdicts, "seconds": {"features": featured - started, "fit": fitted - featured,
                                              "judging": time.perf_counter() - fitted}, "fitted_on": judge.provenance,
            "precision": precision}


def _reward_model(pairs: list, base_dir: Path, setup: JudgeBenchSetup, cache_dir: Path,
                  say: Callable[[str], None]) -> dict[str, Any]:
    from alignloop.config import JudgeSettings
    from alignloop.evaluation.judge import build_judge

    say("reward_model: fitting two reward models (TRL RewardTrainer, the default steps), one per fold")
    started = time.perf_counter()
    judge = build_judge(JudgeSettings(kind="reward_model"), pairs, base_dir, cache_dir / "judge", device="cpu",
                        max_length=setup.max_length, batch_size=8)
    if judge is None:
        raise ValueError(f"{len(pairs)} pairs are too few to cross-fit a judge")
    fitted = time.perf_counter()
    verdicts = judge.prefer([p.prompt for p in pairs], [p.chosen for p in pairs], [p.rejected for p in pairs])
    return {"verdicts": verdicts, "seconds": {"fit": fitted - started, "judging": time.perf_counter() - fitted},
            "fitted_on": judge.provenance}


def run_judge_bench(setup: JudgeBenchSetup, say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every kind of `setup`, cross-fitted and graded on the same pairs."""
    from alignloop.benchmarks.outcome import default_cache_dir, git_commit, machine
    from alignloop.config import BaseModelSettings
    from alignloop.models import resolve_base_model

    say = say or (lambda _msg: None)
    cache_dir = setup.cache_dir or default_cache_dir()
    base_dir = resolve_base_model(BaseModelSettings(**(setup.base_model or {"packaged": "smollm2-135m-instruct"})),
                                  cache_dir / "models")
    pairs, sources, where = load_pairs(setup)
    say(f"judging {where}")
    kinds, verdicts = [], {}
    for kind in setup.kinds:
        got = _probe(pairs, base_dir, setup, say) if kind == "probe" else _reward_model(pairs, base_dir, setup,
                                                                                        cache_dir, say)
        verdicts[kind] = got.pop("verdicts")
        row = {"kind": kind, **_graded(verdicts[kind], pairs, sources), **got}
        row["seconds"]["total"] = sum(row["seconds"].values())
        kinds.append(row)
        say(f"{kind}: accuracy {row['accuracy']:.3f} in {row['seconds']['total']:.0f} s")
    return {"pairs_from": where, "max_length": setup.max_length, "kinds": kinds,
            "differences": _differences(verdicts, pairs), "commit": git_commit(), "machine": machine()}


def _differences(verdicts: dict[str, list[float]], pairs: list) -> list[dict[str, Any]]:
    """Accuracy of each kind minus each later one's, paired by pair, with a 95 % interval over prompts."""
    from alignloop.evaluation.bootstrap import paired_delta
    from alignloop.schema import prompt_key

    clusters = [prompt_key(p.prompt) for p in pairs]
    names = list(verdicts)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            d = paired_delta(verdicts[a], verdicts[b], clusters, n_samples=2000, seed=0)
            out.append({"kinds": [a, b], "difference": d.value, "ci_low": d.low if d.measured else None,
                        "ci_high": d.high if d.measured else None})
    return out


def judge_table(result: dict[str, Any]):
    from rich.table import Table

    table = Table("judge", "accuracy [95% interval]", "pairs / prompts", "by source", "seconds (parts)",
                  title=f"judges cross-fitted and graded on {result['pairs_from']}")
    for k in result["kinds"]:
        span = (f" [{k['ci_low']:.3f}, {k['ci_high']:.3f}]" if k["ci_low"] is not None else " (no interval)")
        by = "; ".join(f"{s} {v['accuracy']:.3f} ({v['pairs']})" for s, v in (k.get("by_source") or {}).items())
        parts = ", ".join(f"{p} {s:.0f}" for p, s in k["seconds"].items() if p != "total")
        table.add_row(k["kind"], f"{k['accuracy']:.3f}{span}", f"{k['pairs']} / {k['prompts']}", by or "—",
                      f"{k['seconds']['total']:.0f} ({parts})")
    for d in result.get("differences", []):
        span = f" [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]" if d["ci_low"] is not None else ""
        table.add_row(f"{d['kinds'][0]} − {d['kinds'][1]}", f"{d['difference']:+.3f}{span}", "paired", "", "")
    return table
