"""The `comparisons` shape: votes between two answers to a prompt, ties and "both bad" included.

Two layouts. Pairwise: one row per vote, `{prompt, answer_a, answer_b, winner}`; answers given as whole
conversations (Chatbot Arena's `conversation_a`/`conversation_b`) need no prompt column: their shared turns
are the prompt. Answers: one row per
prompt with N answers (a list column, or several columns named as a list in the mapping) and the votes
between them (a list), vote k judging the k-th pair of `shape_options.vote_pairs`, by default every
pair in order: (1, 2), (1, 3), ..., (2, 3), ... Without votes, a ranking: a `ranks` list (one per answer,
lower is better), or answers written as objects with a `rank` (Nectar's `{answer, model, rank}`); every
two answers of different rank are a decisive vote, equal ranks a tie. The layout is told by the columns present, or named in
`shape_options.layout`; each vote lands as a row of its own.

A winner is `a`, `b`, `tie` or `both_bad` (Chatbot-Arena's `model_a`, `model_b`, `tie`, `tie (bothbad)`
are read as those), another spelling through `shape_options.winner_values` (e.g. `{1: a, 2: b, 0: tie}`),
or the name of one side's model when `model_a`/`model_b` are mapped. A decisive vote becomes a pair;
ties and both-bad votes are kept as observed, in the store's `ties` table, and counted in the data
profile, never turned into pairs. A winner no rule reads is quarantined with the value it had.
"""

from __future__ import annotations

import json
import math
from itertools import combinations
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from alignloop.shapes.base import (
    LogShape,
    ResolvedInput,
    ShapeInput,
    answer_problem,
    as_conversation,
    as_text,
    batch,
    column,
    conversation_problem,
    first_problem,
    keys,
    message_turns,
    read_answers,
    text_problem,
    timestamps,
)

Verdict = Literal["a", "b", "tie", "both_bad"]
DEFAULT_WINNERS: dict[str, str] = {"a": "a", "b": "b", "tie": "tie", "both_bad": "both_bad",
                                   "model_a": "a", "model_b": "b", "tie (bothbad)": "both_bad"}
PAIRWISE = ("answer_a", "answer_b", "winner")
SCORES = ("score_a", "score_b")  # instead of a winner: the higher score wins (WebGPT's score_0/score_1, SHP's)
ANSWERS = ("answers", "votes", "ranks")


class ComparisonsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    layout: Literal["auto", "pairwise", "answers"] = Field(
        "auto", description="pairwise: answer_a, answer_b, winner per row; answers: N answers and their votes (or "
                            "ranks) per row; auto: answers when the answers, votes or ranks column is mapped or "
                            "present.")
    winner_values: dict[str, Verdict] | None = Field(
        None, description="How the export writes each verdict (e.g. {1: a, 2: b, 0: tie}); replaces the default "
                          "spellings a, b, tie, both_bad, model_a, model_b, 'tie (bothbad)'. Compared as trimmed, "
                          "lower-case text.")
    vote_pairs: list[tuple[int, int]] | None = Field(
        None, description="answers layout: the two answers (numbered from 1) each vote judges, in the votes' order; "
                          "default every pair in order (1,2), (1,3), ..., (2,3), ...")

    ranked_by: str = Field(
        "rank", description="answers layout without votes: the key of answer objects holding their rank or score "
                            "(e.g. overall_score).")
    best: Literal["lowest", "highest"] = Field(
        "lowest", description="answers layout without votes: which end of the ranks (or scores) is the best answer: "
                              "lowest for ranks (1 is best), highest for scores.")

    @field_validator("winner_values", mode="before")
    @classmethod
    def _keys_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {winner_key(k): v for k, v in value.items()}
        return value

    @field_validator("vote_pairs")
    @classmethod
    def _distinct_answers(cls, value: list[tuple[int, int]] | None) -> list[tuple[int, int]] | None:
        for i, j in value or ():
            if i < 1 or j < 1 or i == j:
                raise ValueError(f"each pair names two different answers, numbered from 1 (got [{i}, {j}])")
        return value


LANDING = pa.schema([
    ("id", pa.string()), ("ts", pa.timestamp("us")), ("ts_observed", pa.bool_()), ("user_id", pa.string()),
    ("annotator", pa.string()), ("model_a", pa.string()), ("model_b", pa.string()), ("prompt", pa.string()),
    ("answer_a", pa.string()), ("answer_b", pa.string()), ("winner", pa.string()), ("winner_raw", pa.string()),
    ("prep_problem", pa.string()),
])


def winner_key(value: Any) -> str:
    """A winner as compared with the spellings: trimmed lower-case text; 1.0 reads as 1."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()


def read_winner(value: Any, spellings: dict[str, str], model_a: str | None, model_b: str | None
                ) -> tuple[str | None, str | None]:
    """(verdict, problem) of one written winner."""
    if value is None:
        return None, "winner is missing"
    if isinstance(value, (dict, list)):
        return None, f"winner {as_text(value)[:40]!r} is not a value"
    key = winner_key(value)
    if key in spellings:
        return spellings[key], None
    sides = [side for side, model in (("a", model_a), ("b", model_b)) if model is not None and winner_key(model) == key]
    if len(sides) == 1:
        return sides[0], None
    if sides:
        return None, f"winner {str(value)[:40]!r} names both models (model_a and model_b are the same)"
    known = ", ".join(sorted(spellings))
    return None, (f"winner {str(value)[:40]!r} is none of {known}; map it in shape_options.winner_values"
                  + (" or to model_a/model_b" if model_a is None else ""))


def _layout(inp: ResolvedInput, values: dict[str, list[Any]]) -> str:
    layout = inp.options.layout  # type: ignore[attr-defined]
    if layout == "auto":
        layout = "answers" if any(c in values for c in ANSWERS) else "pairwise"
    if layout == "answers":
        needs: tuple[str, ...] = ("answers",)  # without votes: a ranking
    elif "winner" in values or not any(c in values for c in SCORES):
        needs = PAIRWISE
    else:
        needs = (*PAIRWISE[:2], *SCORES)  # two scores stand for a winner
    for name in needs:
        if name not in values:
            raise KeyError(inp.source_columns.get(name, name))  # the column the connector did not return
    return layout


def prepare(inp: ResolvedInput, values: dict[str, list[Any]], n: int) -> pa.RecordBatch:
    options: ComparisonsOptions = inp.options  # type: ignore[assignment]
    spellings = options.winner_values if options.winner_values is not None else DEFAULT_WINNERS
    layout = _layout(inp, values)
    if "prompt" not in values and (layout == "answers"
                                   or not any(message_turns(v) is not None for v in values["answer_a"])):
        raise KeyError(inp.source_columns.get("prompt", "prompt"))  # only conversations as answers carry the prompt
    if layout == "pairwise":
        return batch(_pairwise_rows(values, n, spellings), LANDING)
    return batch(_answers_rows(values, n, spellings, options), LANDING)


def _common(values: dict[str, list[Any]], n: int, *content: list[Any],
            prompts: list[str | None] | None = None) -> dict[str, list[Any]]:
    """Per source row: key, its problem, ts, ts_observed, its problem, prompt, its problem, people, models.
    `prompts`: the rows' prompts where the answers gave them, else read from the prompt column."""
    prompt = prompts if prompts is not None else [as_conversation(v) for v in values["prompt"]]
    ts, observed, ts_problem = timestamps(values, n)
    key, key_problem = keys(values, n, prompt, *content, column(values, "user_id", n), column(values, "annotator", n),
                            [str(v) for v in column(values, "ts", n)])
    version = [as_text(v) for v in column(values, "model_version", n)]
    return {
        "id": key, "key_problem": key_problem, "ts": ts, "ts_observed": observed, "ts_problem": ts_problem,
        "prompt": prompt,
        "prompt_problem": [conversation_problem(p, raw=r) for p, r in zip(prompt, column(values, "prompt", n),
                                                                              strict=True)],
        "user_id": [as_text(v) for v in column(values, "user_id", n)],
        "annotator": [as_text(v) for v in column(values, "annotator", n)],
        "model_a": [as_text(m) if m is not None else v for m, v in zip(column(values, "model_a", n), version, strict=True)],
        "model_b": [as_text(m) if m is not None else v for m, v in zip(column(values, "model_b", n), version, strict=True)],
    }


def _vote_problem(a: str | None, b: str | None, verdict: str | None, problem: str | None,
                  names: tuple[str, str]) -> str | None:
    return first_problem(
        answer_problem(a, names[0]), answer_problem(b, names[1]), problem,
        f"{names[0]} and {names[1]} are identical" if verdict in ("a", "b") and a == b else None)


def _pairwise_rows(values: dict[str, list[Any]], n: int, spellings: dict[str, str]) -> dict[str, list[Any]]:
    # Answers given as whole conversations (Chatbot Arena's conversation_a/_b) carry the prompt: what they share.
    read = [read_answers(as_conversation(p), [x, y], ("answer_a", "answer_b"))
            for p, x, y in zip(column(values, "prompt", n), values["answer_a"], values["answer_b"], strict=True)]
    a = [x for _, (x, _), _ in read]
    b = [y for _, (_, y), _ in read]
    if "winner" in values:
        raw = [None if v is None else as_text(v) for v in values["winner"]]
    else:
        raw = [json.dumps([as_text(x), as_text(y)]) for x, y in zip(values["score_a"], values["score_b"], strict=True)]
    row = _common(values, n, a, b, raw, prompts=[p for p, _, _ in read])
    verdicts = ([read_winner(w, spellings, ma, mb)
                 for w, ma, mb in zip(values["winner"], row["model_a"], row["model_b"], strict=True)]
                if "winner" in values else
                [_score_verdict(x, y) for x, y in zip(values["score_a"], values["score_b"], strict=True)])
    problems = [first_problem(kp, tp, pp, ap, _vote_problem(x, y, v, wp, ("answer_a", "answer_b")))
                for kp, tp, pp, x, y, (_, _, ap), (v, wp) in zip(row["key_problem"], row["ts_problem"],
                                                                 row["prompt_problem"], a, b, read, verdicts, strict=True)]
    return {**{c: row[c] for c in LANDING.names if c in row}, "answer_a": a, "answer_b": b,
            "winner": [v for v, _ in verdicts], "winner_raw": raw, "prep_problem": problems}


def as_list(value: Any) -> list[Any] | None:
    """A list column's value; a JSON array written as text is read as one. None: not a list."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, list) else None
    return None


def _answers_rows(values: dict[str, list[Any]], n: int, spellings: dict[str, str],
                  options: ComparisonsOptions) -> dict[str, list[Any]]:
    """One landing row per vote; a source row whose answers or votes cannot be placed lands as one row with
    that reason, so no source row disappears."""
    answers = [as_list(v) for v in values["answers"]]
    ranked = "votes" not in values
    judged = values["ranks"] if ranked and "ranks" in values else values.get("votes", [None] * n)
    row = _common(values, n, [as_text(v) for v in values["answers"]], [as_text(v) for v in judged])
    out: dict[str, list[Any]] = {c: [] for c in LANDING.names}
    for r in range(n):
        models: list[Any] = []
        ranks: list[Any] = []
        if ranked:  # a ranking: every two answers whose ranks differ are a decisive vote, equal ranks a tie
            answers[r], models, ranks, rank_problem = _ranking(answers[r], values["ranks"][r] if "ranks" in values
                                                               else None, "ranks" in values, options.ranked_by)
            spelled = RANK_VERDICTS
            sign = 1 if options.best == "lowest" else -1
            votes = [_rank_verdict(sign * ranks[i - 1], sign * ranks[j - 1])
                     for i, j in combinations(range(1, len(ranks) + 1), 2)] if ranks else None
            entries = ([(None, 0, 0, None, rank_problem)] if rank_problem
                       else _votes_of(answers[r], votes, values["answers"][r], None, None))
        else:
            spelled = spellings
            entries = _votes_of(answers[r], as_list(judged[r]), values["answers"][r], judged[r], options.vote_pairs)
        for vote in entries:
            number, i, j, written, problem = vote
            a, b = (answers[r][i - 1], answers[r][j - 1]) if problem is None else (None, None)
            problem = problem or text_problem(a, _answer_name(i)) or text_problem(b, _answer_name(j))
            a, b = as_text(a), as_text(b)
            # an answer object's own model, else the row's (model_a/model_b or model_version)
            model_a, model_b = (as_text(models[k - 1]) if models and problem is None and models[k - 1] is not None
                                else row[side][r] for k, side in ((i, "model_a"), (j, "model_b")))
            verdict, winner_problem = (None, None) if problem else read_winner(written, spelled, model_a, model_b)
            names = (f"answer {i}", f"answer {j}")
            out["id"].append(row["id"][r] if number is None else f"{row['id'][r]}/{number}:{i}v{j}")
            for c in ("ts", "ts_observed", "user_id", "annotator", "prompt"):
                out[c].append(row[c][r])
            out["model_a"].append(model_a)
            out["model_b"].append(model_b)
            out["answer_a"].append(a)
            out["answer_b"].append(b)
            out["winner"].append(verdict)
            out["winner_raw"].append(json.dumps([ranks[i - 1], ranks[j - 1]]) if ranks and number is not None
                                     else None if written is None else as_text(written))
            out["prep_problem"].append(first_problem(row["key_problem"][r], row["ts_problem"][r], row["prompt_problem"][r],
                                                     problem or _vote_problem(a, b, verdict, winner_problem, names)))
    return out


# Verdicts a ranking gives (written as "rank i vs rank j" outcomes, never read through winner_values).
RANK_VERDICTS = {"a": "a", "b": "b", "tie": "tie"}
# Keys of an answer object holding its text (Nectar-style {answer, model, rank} answers), in this order.
ANSWER_TEXT_KEYS = ("answer", "text", "content", "response", "completion", "output")


def _ranking(answers: list[Any] | None, ranks_raw: Any, ranks_column: bool, key: str = "rank"
             ) -> tuple[list[Any] | None, list[Any], list[Any], str | None]:
    """(answer texts, their models, their ranks, problem) of a ranked row: ranks from the ranks column when
    there is one, else from answer objects' `key` (Nectar-style {answer, model, rank})."""
    if answers is None:
        return None, [], [], None  # named by _votes_of
    objects = [a if isinstance(a, dict) else None for a in answers]
    texts = [_object_text(o) if o is not None else a for a, o in zip(answers, objects, strict=True)]
    models = [o.get("model") if o is not None else None for o in objects]
    if ranks_column:
        ranks = as_list(ranks_raw)
        if ranks is None:
            return texts, models, [], "ranks is missing" if ranks_raw is None else "ranks is not a list"
    elif all(o is not None and key in o for o in objects):
        ranks = [o[key] for o in objects]
    else:
        return texts, models, [], (f"answers carry no {key!r}; map a votes or a ranks column, or name the answers' "
                                    "rank key in shape_options.ranked_by")
    if len(ranks) != len(answers):
        return texts, models, [], f"ranks holds {len(ranks)} value(s) for {len(answers)} answers"
    if len(answers) < 2:
        return texts, models, [], f"a ranking needs two answers or more (got {len(answers)})"
    for k, value in enumerate(ranks, 1):
        if not _is_number(value):
            written = "missing" if value is None else repr(value)[:40]
            return texts, models, [], f"rank of answer {k} is {written}, not a number"
    return texts, models, ranks, None


def _score_verdict(score_a: Any, score_b: Any) -> tuple[str | None, str | None]:
    """(verdict, problem) of two scores: the higher wins, equal scores tie."""
    for name, value in (("score_a", score_a), ("score_b", score_b)):
        if not _is_number(value):
            return None, f"{name} is {'missing' if value is None else repr(value)[:40]}, not a number"
    return _rank_verdict(-score_a, -score_b), None  # the higher score is the better rank


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _rank_verdict(rank_a: float, rank_b: float) -> str:
    return "a" if rank_a < rank_b else "b" if rank_a > rank_b else "tie"


def _object_text(answer: dict[str, Any]) -> Any:
    """An answer object's text (its first text key), or the object itself (then refused as not text)."""
    return next((answer[k] for k in ANSWER_TEXT_KEYS if k in answer), answer)


def _answer_name(i: int) -> str:
    return f"answer {i}"


def _votes_of(answers: list[Any] | None, votes: list[Any] | None, raw_answers: Any, raw_votes: Any,
              vote_pairs: list[tuple[int, int]] | None) -> list[tuple[int | None, int, int, Any, str | None]]:
    """(vote number, answer i, answer j, winner as written, problem) per vote of one source row; a row whose
    votes cannot be placed gives one entry (number None) with the reason."""
    if answers is None:
        return [(None, 0, 0, None, "answers is missing" if raw_answers is None else "answers is not a list")]
    if votes is None:
        return [(None, 0, 0, None, "votes is missing" if raw_votes is None else "votes is not a list")]
    pairs = vote_pairs or list(combinations(range(1, len(answers) + 1), 2))
    if len(votes) != len(pairs) or not votes:
        return [(None, 0, 0, None,
                 f"votes holds {len(votes)} value(s) but {len(answers)} answers give {len(pairs)} pair(s) to vote on; "
                 "give the pairs each vote judges in shape_options.vote_pairs")]
    out = []
    for k, ((i, j), written) in enumerate(zip(pairs, votes, strict=True), 1):
        beyond = max(i, j) > len(answers)
        out.append((k, i, j, written, f"vote {k} names answer {max(i, j)} but the row has {len(answers)} answers"
                    if beyond else None))
    return out


COMPARISONS = LogShape(
    name="comparisons",
    inputs=(
        ShapeInput(
            name="rows", default_table="comparisons", raw_table="raw_comparisons", key="id", cursor="ts",
            columns=("id", "ts", "user_id", "annotator", "model_version", "prompt", "answer_a", "answer_b", "winner",
                     "score_a", "score_b", "model_a", "model_b", "answers", "votes", "ranks"),
            optional=("id", "ts", "user_id", "annotator", "model_version", "prompt", "answer_a", "answer_b", "winner",
                      "score_a", "score_b", "model_a", "model_b", "answers", "votes", "ranks"),
            text_columns=("prompt", "answer_a", "answer_b"), json_columns=("prompt",),
            user_columns=("user_id", "annotator"),
            list_columns=("answers", "votes", "ranks"),
        ),
    ),
    prepare=prepare,
    options=ComparisonsOptions,
    ties_sql="shapes/comparisons_ties.sql",
    doc="prompt + answer_a + answer_b + winner (a, b, tie, both_bad), or prompt + answers + votes between them "
        "or their ranks; decisive votes give pairs, ties are kept as observed",
)

