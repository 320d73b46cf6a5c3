"""The real feedback behind `alignloop bench outcome`, read from its files and split by prompt.

Two public sets of human judgements (../shared/data, see its README):
- hh-helpful: gzipped JSONL of `{chosen, rejected}` whole "\\n\\nHuman: … \\n\\nAssistant: …" transcripts,
  cut into prompt (their shared history) and the two final answers by the `transcripts` shape's own
  splitter; rows it refuses are counted and left out, with their reason.
- QA-Feedback: questions with four answers and six pairwise votes (1: first better, 2: second, 0: tie);
  each decisive vote is a pair with the question alone as the prompt (the passages would make prompts of
  thousands of tokens). Ties are counted, never turned into pairs.

Every row falls on one side of a split by a salted hash of its prompt, so a prompt (and every pair
asked about it) is in train, validation or test, never in two. The salt keeps this split apart from
the store's own train/holdout hash.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignloop.schema import prompt_key

SPLIT_SALT = "bench-outcome:"
# Shares of prompts: test first, then validation; the rest trains.
TEST_SHARE, VALIDATION_SHARE = 0.15, 0.15
SPLITS = ("train", "validation", "test")
# QA-Feedback's six votes per question compare its four answers in this order.
QA_COMPARISONS = ((1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4))


def default_data_dir() -> Path:
    """../shared/data beside the repository (where CI clones it)."""
    return Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@dataclass
class SourceRows:
    """One data set's usable pairs and what was left out of it, and why."""

    name: str
    pairs: list[dict[str, Any]]
    rows_read: int
    left_out: Counter = field(default_factory=Counter)   # reason -> rows
    ties: int = 0


def split_of(prompt: list[dict[str, str]]) -> str:
    """train, validation or test, from a salted hash of the prompt alone."""
    position = int(hashlib.sha256((SPLIT_SALT + prompt_key(prompt)).encode()).hexdigest()[:8], 16) / 0x1_0000_0000
    if position < TEST_SHARE:
        return "test"
    return "validation" if position < TEST_SHARE + VALIDATION_SHARE else "train"


def read_hh(folder: Path) -> SourceRows:
    """Pairs from every *.jsonl.gz transcript file in folder (sorted by name), split by the transcripts shape."""
    from alignloop.shapes.transcripts import split_frame

    files = sorted(Path(folder).glob("*.jsonl.gz"))
    if not files:
        raise FileNotFoundError(f"{folder}: no *.jsonl.gz transcript files")
    chosen, rejected, origin = [], [], []
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    chosen.append(row.get("chosen"))
                    rejected.append(row.get("rejected"))
                    origin.append(path.name.split(".")[0])
    frame = split_frame(chosen, rejected)
    out = SourceRows("hh-helpful", [], len(chosen))
    for row, where in zip(frame.iter_rows(named=True), origin, strict=True):
        if row["problem"]:
            out.left_out[row["problem"]] += 1
            continue
        out.pairs.append({"prompt": json.loads(row["prompt"]), "chosen": row["chosen"], "rejected": row["rejected"],
                          "origin": where})
    return out


def read_qa_feedback(path: Path) -> SourceRows:
    """One pair per decisive vote, the question as a one-turn prompt; ties and identical answers left out."""
    records = json.loads(Path(path).read_text(encoding="utf-8"))
    out = SourceRows("qa-feedback", [], 0)
    for record in records:
        prompt = [{"role": "user", "content": record["question"].strip()}]
        for (a, b), vote in zip(QA_COMPARISONS, record["preference"], strict=True):
            out.rows_read += 1
            first, second = record[f"prediction {a}"].strip(), record[f"prediction {b}"].strip()
            if vote == 0:
                out.ties += 1
            elif vote not in (1, 2):
                out.left_out[f"vote {vote!r} is not 0, 1 or 2"] += 1
            elif first == second or not first or not second:
                out.left_out["the two answers are identical or empty"] += 1
            else:
                chosen, rejected = (first, second) if vote == 1 else (second, first)
                out.pairs.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "origin": "qa-feedback"})
    return out


def read_sources(data_dir: Path) -> list[SourceRows]:
    """Both real sets under data_dir; ConfigError naming --data when either is missing or unreadable."""
    from alignloop.errors import ConfigError

    data_dir = Path(data_dir)
    try:
        return [read_hh(data_dir / "hh-helpful"), read_qa_feedback(data_dir / "qa-feedback" / "dev_feedback.json")]
    except OSError as e:
        raise ConfigError(f"--data: {e}; point it at the folder holding hh-helpful/*.jsonl.gz and "
                          "qa-feedback/dev_feedback.json (default ../shared/data)") from None


def split_pairs(sources: list[SourceRows]) -> dict[str, list[dict[str, Any]]]:
    """Every source's pairs by split, each tagged with its source; order kept within a split."""
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for source in sources:
        for pair in source.pairs:
            out[split_of(pair["prompt"])].append({**pair, "source": source.name})
    return out


def sample_pairs(pairs: list[dict[str, Any]], limit: int | None, salt: str = "sample") -> list[dict[str, Any]]:
    """At most `limit` pairs, whole prompts at a time, chosen by a salted prompt hash (all when None).

    Whole prompts, so a smaller sample is a set of prompts, not a few pairs from many of them; the same
    limit always gives the same sample, and a larger limit a superset of a smaller one's prompts."""
    if limit is None or len(pairs) <= limit:
        return list(pairs)
    def rank(p: dict[str, Any]) -> str:
        return hashlib.sha256(f"{salt}:{prompt_key(p['prompt'])}".encode()).hexdigest()

    by_prompt: dict[str, list[dict[str, Any]]] = {}
    for p in sorted(pairs, key=rank):
        by_prompt.setdefault(rank(p), []).append(p)
    kept: list[dict[str, Any]] = []
    for group in by_prompt.values():
        if len(kept) + len(group) > limit:
            if kept:
                break
        kept.extend(group)
    keep = {id(p) for p in kept}
    return [p for p in pairs if id(p) in keep]
