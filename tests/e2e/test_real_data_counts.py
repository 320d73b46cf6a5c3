"""`alignloop ingest` on every real export in ../shared/data, read as files and as the same rows in PostgreSQL:
each input row (a transcript pair; a vote of QA-Feedback) counted exactly once as a pair, thumb, rank, tie or
quarantined, with totals derived here from the raw files in plain Python, never from alignloop's output."""

from __future__ import annotations

import gzip
import itertools
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import yaml
from typer.testing import CliRunner

from alignloop.cli.main import app
from alignloop.ingest.store import FeedbackStore
from tests.contract.servers import PG_HOST, PG_PORT, postgres_database

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
HH = sorted((DATA / "hh-helpful").glob("*.jsonl.gz"))
QA = DATA / "qa-feedback" / "dev_feedback.json"
QA_ANSWERS = [f"prediction {i}" for i in range(1, 5)]
QA_VERDICTS = {1: "a", 2: "b", 0: "tie"}
CONTROL = re.compile(r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F]")


# ------------------------------------------------------------------------------ the expected counts
@dataclass
class Expected:
    pairs: int = 0
    ties: int = 0
    quarantined: int = 0
    reasons: Counter = field(default_factory=Counter)
    seen: set = field(default_factory=set)       # normalised (prompt, chosen, rejected) of the pairs kept

    def pair(self, prompt: tuple, chosen: str, rejected: str) -> None:
        # A pair repeating an earlier one after case and whitespace are normalised is a duplicate (quarantined).
        key = tuple(_norm(t) for t in (*prompt, chosen, rejected))
        if key in self.seen:
            self.bad("duplicate")
        else:
            self.seen.add(key)
            self.pairs += 1

    def bad(self, why: str) -> None:
        self.quarantined += 1
        self.reasons[why] += 1


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _dialogue(text: str) -> tuple[list[tuple[str, str]], str | None]:
    """(turns as (role, text), problem) of one "\\n\\nHuman: ... \\n\\nAssistant: ..." transcript."""
    if text.startswith(("Human:", "Assistant:")):
        text = "\n\n" + text
    pieces = re.split(r"\n\n(Human|Assistant):", text)
    if len(pieces) < 3 or pieces[0].strip():
        return [], "not a dialogue"
    turns = [("user" if role == "Human" else "assistant", body.strip())
             for role, body in zip(pieces[1::2], pieces[2::2], strict=True)]
    return turns, None if turns[-1][0] == "assistant" else "does not end with an Assistant turn"


def transcript_outcome(row: dict, expected: Expected) -> None:
    """What one hh-helpful row must become: a pair of the two final answers below their shared history."""
    (chosen, c_problem), (rejected, r_problem) = _dialogue(row["chosen"]), _dialogue(row["rejected"])
    if c_problem or r_problem:
        return expected.bad(c_problem or r_problem)
    history = chosen[:-1]
    answers = chosen[-1][1], rejected[-1][1]
    why = ("history differs" if history != rejected[:-1] else "empty answer" if "" in answers
           else "identical answers" if answers[0] == answers[1] else "no history" if not history
           else "empty turn" if any(not t for _, t in history) else "history ends with the assistant"
           if history[-1][0] != "user" else "control characters" if any(CONTROL.search(a) for a in answers) else None)
    if why:
        return expected.bad(why)
    expected.pair(tuple(t for _, t in history), *answers)


def qa_outcome(question: dict, expected: Expected) -> int:
    """What one QA-Feedback question's votes must become (1: the first answer better, 2: the second, 0: a tie)."""
    answers = [question[c] for c in QA_ANSWERS]
    pairs = list(itertools.combinations(range(4), 2))
    assert len(question["preference"]) == len(pairs)
    for (i, j), vote in zip(pairs, question["preference"], strict=True):
        verdict = QA_VERDICTS.get(vote)
        if verdict is None or not answers[i].strip() or not answers[j].strip():
            expected.bad("unreadable vote")
        elif verdict == "tie":
            expected.ties += 1
        elif answers[i] == answers[j]:
            expected.bad("identical answers")
        else:
            chosen, rejected = (answers[i], answers[j]) if verdict == "a" else (answers[j], answers[i])
            expected.pair((question["question"].strip(),), chosen, rejected)
    return len(pairs)


def hh_rows() -> list[dict]:
    return [json.loads(line) for path in HH for line in gzip.open(path, "rt", encoding="utf-8") if line.strip()]


def expected_counts() -> tuple[dict[str, int], Expected, Expected]:
    hh, qa = Expected(), Expected()
    rows = hh_rows()
    distinct = {(r["chosen"], r["rejected"]) for r in rows}
    assert len(distinct) == len(rows)  # no row is read twice, so none is skipped as a re-read
    for row in rows:
        transcript_outcome(row, hh)
    votes = sum(qa_outcome(q, qa) for q in json.loads(QA.read_text()))
    return {"hh": len(rows), "qa": votes}, hh, qa


# ------------------------------------------------------------------------------ the runs
def _config(tmp_path: Path, sources: list[dict]) -> Path:
    config = tmp_path / "alignloop.yaml"
    config.write_text(yaml.safe_dump({"base_model": {"tiny": True}, "store": str(tmp_path / "feedback.duckdb"),
                                      "sources": sources}))
    return config


QA_SOURCE = {"shape": "comparisons", "shape_options": {"winner_values": {1: "a", 2: "b", 0: "tie"}},
             "mapping": {"rows": {"prompt": "question", "answers": QA_ANSWERS, "votes": "preference"}}}


# alignloop's quarantine reasons, by a phrase each holds, as the categories above name them
REASONS = {"do not share the history": "history differs", "final answer is empty": "empty answer",
           "final answers are identical": "identical answers", "turn with no text": "empty turn",
           "does not end with an Assistant turn": "does not end with an Assistant turn",
           "not a dialogue": "not a dialogue", "duplicate of an earlier row": "duplicate",
           "has no turns": "no history", "must end with the user's turn": "history ends with the assistant",
           "control characters": "control characters", "are identical": "identical answers"}


def _category(reason: str) -> str:
    return next((name for phrase, name in REASONS.items() if phrase in reason), reason)


def _ingest_and_count(config: Path, store_path: Path) -> dict[str, dict]:
    result = CliRunner().invoke(app, ["ingest", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    with FeedbackStore(store_path) as store:
        counts: dict[str, dict] = {}
        for source in ("hh", "qa"):
            counts[source] = {table: store.con.execute(f"SELECT count(*) FROM {table} WHERE source = ?",
                                                        [source]).fetchone()[0]
                              for table in ("pairs", "unpaired", "ranks", "ties", "quarantine")}
            reasons = Counter()
            for reason, n in store.quarantine_reasons(source):
                reasons[_category(reason)] += n
            counts[source]["reasons"] = dict(reasons)
        return counts


def _assert_counts(counts: dict[str, dict]) -> None:
    inputs, hh, qa = expected_counts()
    assert inputs == {"hh": 6240, "qa": 3000}  # the README's counts: the data is what it says
    for source, want in (("hh", hh), ("qa", qa)):
        got = counts[source]
        assert (got["pairs"], got["ties"], got["quarantine"], got["unpaired"], got["ranks"]) == (
            want.pairs, want.ties, want.quarantined, 0, 0), (source, got, dict(want.reasons))
        assert got["reasons"] == dict(want.reasons)
        # Every input row exactly once: a pair, a thumb, a rank, a tie or quarantined.
        assert sum(v for k, v in got.items() if k != "reasons") == inputs[source]


def test_every_row_of_the_shared_data_read_as_files_lands_once(tmp_path):
    config = _config(tmp_path, [
        {"name": "hh", "connector": "files", "options": {"path": str(DATA / "hh-helpful" / "*.jsonl.gz")},
         "shape": "transcripts"},
        {"name": "qa", "connector": "files", "options": {"path": str(QA)}, **QA_SOURCE},
    ])
    _assert_counts(_ingest_and_count(config, tmp_path / "feedback.duckdb"))


def _load_postgres(database: str) -> None:
    """The same rows in two PostgreSQL tables, written by psycopg (the export's values as they are)."""
    with psycopg.connect(f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{database}", autocommit=True) as con:
        con.execute("CREATE TABLE hh_helpful (chosen TEXT, rejected TEXT)")
        with con.cursor().copy("COPY hh_helpful (chosen, rejected) FROM STDIN") as copy:
            for row in hh_rows():
                copy.write_row((row["chosen"], row["rejected"]))
        answers = ", ".join(f'"{c}" TEXT' for c in QA_ANSWERS)
        con.execute(f"CREATE TABLE qa_feedback (question TEXT, {answers}, preference BIGINT[])")
        columns = ", ".join(f'"{c}"' for c in ["question", *QA_ANSWERS, "preference"])
        with con.cursor().copy(f"COPY qa_feedback ({columns}) FROM STDIN") as copy:
            for q in json.loads(QA.read_text()):
                copy.write_row((q["question"], *(q[c] for c in QA_ANSWERS), q["preference"]))


def test_the_same_rows_in_postgresql_land_with_the_same_counts(tmp_path):
    with postgres_database() as database:
        _load_postgres(database)
        dsn = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{database}"
        qa = {**QA_SOURCE, "mapping": {"rows": {**QA_SOURCE["mapping"]["rows"], "table": "qa_feedback"}}}
        config = _config(tmp_path, [
            {"name": "hh", "connector": "postgres", "options": {"dsn": dsn}, "shape": "transcripts",
             "mapping": {"rows": {"table": "hh_helpful"}}},
            {"name": "qa", "connector": "postgres", "options": {"dsn": dsn}, **qa},
        ])
        _assert_counts(_ingest_and_count(config, tmp_path / "feedback.duckdb"))
