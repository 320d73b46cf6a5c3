"""The `comparisons` shape: decisive votes become pairs, ties and both-bad votes are kept as observed (counted in
the profile, never pairs), both layouts, winner spellings, and every broken vote quarantined with its reason."""

from __future__ import annotations

import gzip
import itertools
import json
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from alignloop.config import IngestSettings, SourceSettings
from alignloop.connectors.files import FilesConnector, FilesSettings
from alignloop.errors import ConfigError, TerminalError
from alignloop.ingest.store import FeedbackStore
from alignloop.shapes import resolve_mapping
from alignloop.shapes.comparisons import read_winner
from tests.unit.shapes.conftest import ShapeRun, fixture_rows, write_table

PAIRWISE = {"rows": {"table": "votes", "annotator": "rater"}}
ANSWERS = {"rows": {"table": "qa", "prompt": "question", "answers": ["prediction 1", "prediction 2", "prediction 3"],
                    "votes": "preference"}}
QA_VALUES = {"winner_values": {1: "a", 2: "b", 0: "tie"}}
U = "user"


def test_decisive_votes_become_pairs_ties_are_kept_and_broken_votes_are_quarantined(tmp_path, shape_run):
    wh = write_table(tmp_path / "wh.duckdb", "votes", fixture_rows("comparisons.jsonl"))
    result = shape_run.ingest(wh, "comparisons", mapping=PAIRWISE)
    pairs = shape_run.rows("SELECT prompt[1].content, chosen, rejected FROM pairs ORDER BY ts")
    assert pairs == [("Name a prime number.", "7 is prime.", "9 is prime."),
                     ("What is 2 + 2?", "2 + 2 = 4.", "5."),          # "B " read as b
                     ("Say hello.", "Hello!", "Go away.")]           # Chatbot-Arena's model_b
    ties = shape_run.rows("SELECT prompt[1].content, answer_a, answer_b, verdict FROM ties ORDER BY ts")
    assert ties == [("Capital of France?", "Paris.", "It is Paris.", "tie"),
                    ("Capital of Spain?", "Lisbon.", "Rome.", "both_bad"),
                    ("Largest planet?", "Mars.", "Pluto.", "both_bad"),  # "tie (bothbad)"
                    ("Color of snow?", "White.", "White.", "tie")]      # a tie between equal texts is still one
    assert shape_run.reasons() == {
        "winner 'c' is none of a, b, both_bad, model_a, model_b, tie, tie (bothbad); map it in "
        "shape_options.winner_values or to model_a/model_b": 1,
        "winner is missing": 1,
        "answer_a and answer_b are identical": 1,
        "answer_b is empty": 1,
    }
    assert (result.rows_read, result.pairs_added, result.ties_added, result.quarantined) == ({"rows": 11}, 3, 4, 4)
    # Every row read is exactly one of pair, tie or quarantined.
    counts = shape_run.store.counts()
    assert counts["pairs"] + counts["ties"] + counts["quarantine"] == 11
    again = shape_run.ingest(wh, "comparisons", mapping=PAIRWISE)
    assert (again.pairs_added, again.ties_added, again.quarantined) == (0, 0, 0)


def test_answers_layout_lands_one_row_per_vote_from_answer_columns_and_a_value_mapping(tmp_path, shape_run):
    wh = write_table(tmp_path / "wh.duckdb", "qa", fixture_rows("comparisons_answers.jsonl"))
    result = shape_run.ingest(wh, "comparisons", mapping=ANSWERS, shape_options=QA_VALUES)
    pairs = shape_run.rows("SELECT prompt[1].content, chosen, rejected FROM pairs ORDER BY prompt[1].content, chosen")
    assert pairs == [
        ("What is H2O?", "Water.", "Salt."),
        ("When was the Eiffel Tower built?", "Between 1887 and 1889.", "In 1889."),  # vote 2 (1 v 3): 2 = the second
        ("When was the Eiffel Tower built?", "In 1889.", "In 1920."),
        ("Who wrote Hamlet?", "Shakespeare.", "Marlowe."),
        ("Who wrote Hamlet?", "Shakespeare.", "William Shakespeare."),
        ("Who wrote Hamlet?", "William Shakespeare.", "Marlowe."),
    ]
    assert shape_run.rows("SELECT answer_a, answer_b, verdict FROM ties") == [
        ("In 1920.", "Between 1887 and 1889.", "tie")]  # vote 3 judges answers 2 and 3
    assert shape_run.reasons() == {
        "answer 3 is empty": 2,
        "votes holds 2 value(s) but 3 answers give 3 pair(s) to vote on; give the pairs each vote judges in "
        "shape_options.vote_pairs": 1,
    }
    assert result.rows_read == {"rows": 4} and (result.pairs_added, result.ties_added, result.quarantined) == (6, 1, 3)
    ids = sorted(i for (i,) in shape_run.rows("SELECT id FROM raw_comparisons"))
    assert sum(i.endswith(("/1:1v2", "/2:1v3", "/3:2v3")) for i in ids) == 9 and len(ids) == 10


def test_vote_pairs_name_which_answers_each_vote_judges(tmp_path, shape_run):
    rows = [{"q": "Pick one.", "answers": ["x", "y", "z"], "votes": ["b", "a"]}]
    wh = write_table(tmp_path / "wh.duckdb", "comparisons", rows)
    shape_run.ingest(wh, "comparisons", mapping={"rows": {"prompt": "q"}},
                     shape_options={"vote_pairs": [[3, 1], [2, 3]], "layout": "answers"})
    assert sorted(shape_run.rows("SELECT chosen, rejected FROM pairs")) == [("x", "z"), ("y", "z")]


def test_a_winner_may_name_the_model_that_wrote_the_answer(tmp_path, shape_run):
    rows = [{"prompt": "Hi", "answer_a": "Hello.", "answer_b": "Hey!", "model_a": "m-one", "model_b": "m-two",
             "winner": "m-two"},
            {"prompt": "Bye", "answer_a": "Goodbye.", "answer_b": "Later.", "model_a": "m-one", "model_b": "m-two",
             "winner": "M-One"},
            {"prompt": "Yo", "answer_a": "Yo.", "answer_b": "Sup.", "model_a": "m-one", "model_b": "m-two",
             "winner": "m-three"}]
    wh = write_table(tmp_path / "wh.duckdb", "comparisons", rows)
    shape_run.ingest(wh, "comparisons")
    assert sorted(shape_run.rows("SELECT chosen, rejected, model_version FROM pairs")) == [
        ("Goodbye.", "Later.", "m-one vs m-two"), ("Hey!", "Hello.", "m-two vs m-one")]
    assert list(shape_run.reasons()) == [
        "winner 'm-three' is none of a, b, both_bad, model_a, model_b, tie, tie (bothbad); map it in "
        "shape_options.winner_values"]


def test_ties_are_counted_in_the_profile_and_never_read_as_pairs(tmp_path, shape_run):
    wh = write_table(tmp_path / "wh.duckdb", "votes", fixture_rows("comparisons.jsonl"))
    shape_run.ingest(wh, "comparisons", mapping=PAIRWISE)
    store = shape_run.store
    snapshot = store.snapshot()
    unpaired, pairs = store.read_snapshot(snapshot)
    assert pairs.num_rows == snapshot.n_pairs == 3
    texts = set(pairs.column("chosen").to_pylist() + pairs.column("rejected").to_pylist())
    assert not {"Paris.", "Lisbon.", "Mars."} & texts
    profile = store.measure(snapshot, 0.0, model_noise=False)
    assert (profile.n_pairs, profile.n_ties, profile.n_both_bad) == (3, 2, 2)
    assert profile.to_dict()["n_ties"] == 2


def test_a_tie_changed_upstream_to_a_decision_becomes_a_pair_and_earlier_snapshots_keep_the_tie(tmp_path, shape_run):
    rows = [{"id": "k1", "ts": datetime(2026, 10, 1, 12), "prompt": "Q?", "answer_a": "A1", "answer_b": "B1",
             "winner": "tie"}]
    wh = write_table(tmp_path / "wh.duckdb", "comparisons", rows)
    mapping = {"rows": {"id": "id", "ts": "ts"}}
    shape_run.ingest(wh, "comparisons", mapping=mapping)
    before = shape_run.store.snapshot()
    write_table(wh, "comparisons", [{**rows[0], "ts": datetime(2026, 10, 1, 13), "winner": "b"}])
    result = shape_run.ingest(wh, "comparisons", mapping=mapping)
    assert (result.pairs_added, result.ties_added) == (1, 0)
    assert shape_run.rows("SELECT count(*) FROM ties") == [(0,)]
    after = shape_run.store.snapshot()
    assert after.snapshot_id != before.snapshot_id
    assert shape_run.store.measure(before, 0.0, model_noise=False).n_ties == 1
    late = shape_run.store.measure(after, 0.0, model_noise=False)
    assert (late.n_ties, late.n_pairs) == (0, 1)


def test_settings_mistakes_name_the_setting_and_the_fix():
    with pytest.raises(ConfigError, match=r"sources\[s\]\.shape_options\.winner_values\.1: Input should be 'a', 'b', "
                                          r"'tie' or 'both_bad'"):
        SourceSettings(name="s", shape="comparisons", shape_options={"winner_values": {1: "first"}})
    with pytest.raises(ConfigError, match=r"shape_options\.vote_pairs: each pair names two different answers"):
        SourceSettings(name="s", shape="comparisons", shape_options={"vote_pairs": [[1, 1]]})
    with pytest.raises(ConfigError, match=r"sources\[s\]\.mapping\.rows\.prompt: name one source column"):
        resolve_mapping("comparisons", {"rows": {"prompt": ["q1", "q2"]}}, "sources[s]")
    with pytest.raises(ConfigError, match=r"mapping\.rows\.answers: name at least one source column"):
        resolve_mapping("comparisons", {"rows": {"answers": []}}, "sources[s]")


def test_a_missing_column_of_the_layout_is_named(tmp_path, shape_run):
    wh = write_table(tmp_path / "wh.duckdb", "comparisons", [{"prompt": "Hi", "answer_a": "x", "answer_b": "y"}])
    with pytest.raises(TerminalError, match="the connector returned no column 'winner'"):
        shape_run.ingest(wh, "comparisons")
    wh = write_table(tmp_path / "wh2.duckdb", "qa", [{"question": "Hi", "prediction 1": "x", "preference": [1]}])
    with pytest.raises(TerminalError, match="the connector returned no column 'prediction 2'"):
        shape_run.ingest(wh, "comparisons", mapping=ANSWERS)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(max_size=12), st.integers(-3, 3), st.floats(allow_nan=True), st.booleans(), st.none()))
@example(-0.0)
@example(" 2 ")
def test_any_written_winner_is_read_as_a_verdict_or_refused_with_its_value(value):
    verdict, problem = read_winner(value, {"1": "a", "2": "b", "0": "tie"}, None, None)
    assert (verdict is None) != (problem is None)
    if verdict is not None:
        # A float reads by its value: -0.0 is 0, a tie, as 0.0 is.
        written = str(value).strip().lower() in ("1", "2", "0", "1.0", "2.0", "0.0")
        assert verdict in ("a", "b", "tie") and (written or (isinstance(value, float) and value in (0.0, 1.0, 2.0)))
        assert verdict == {"1": "a", "2": "b", "0": "tie"}[str(int(float(value))) if not isinstance(value, str)
                                                           else str(int(float(value.strip())))]
    else:
        assert problem.startswith("winner")


# ------------------------------------------------------------------------------ real data
QA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "qa-feedback" / "dev_feedback.json"


def test_qa_feedback_loads_through_files_with_every_vote_a_pair_or_a_tie(tmp_path):
    """500 questions x 4 answers, 6 votes each (1: first better, 2: second, 0: tie), read as the export is."""
    questions = json.loads(QA.read_text())
    votes = [v for q in questions for v in q["preference"]]
    assert len(votes) == 6 * len(questions)  # the export's own layout: one vote per pair of 4 answers
    source = SourceSettings(name="qa", connector="files", options={"path": str(QA)}, shape="comparisons",
                            mapping={"rows": {"prompt": "question", "votes": "preference",
                                              "answers": [f"prediction {i}" for i in range(1, 5)]}},
                            shape_options=QA_VALUES)
    with FeedbackStore(tmp_path / "store.duckdb") as store:
        result = store.ingest(source, FilesConnector(FilesSettings(path=str(QA))), settings=IngestSettings())
        assert result.rows_read == {"rows": len(questions)}
        assert (result.pairs_added, result.ties_added, result.quarantined) == (
            sum(v in (1, 2) for v in votes), votes.count(0), 0)
        first = questions[0]
        answers = [first[f"prediction {i}"] for i in range(1, 5)]
        expected = {(answers[i], answers[j]) if v == 1 else (answers[j], answers[i])
                    for (i, j), v in zip(itertools.combinations(range(4), 2), first["preference"], strict=True) if v}
        got = set(store.con.execute("SELECT chosen, rejected FROM pairs WHERE prompt[1].content = ?",
                                    [first["question"]]).fetchall())
        assert got == expected


def test_a_gzipped_jsonl_export_of_pairwise_votes_loads_the_same(tmp_path):
    path = tmp_path / "arena.jsonl.gz"
    rows = fixture_rows("comparisons.jsonl")
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    run = ShapeRun(tmp_path / "s")
    try:
        source = SourceSettings(name="arena", connector="files", options={"path": str(path)}, shape="comparisons",
                                mapping=PAIRWISE)
        result = run.store.ingest(source, FilesConnector(FilesSettings(path=str(path))),
                                  settings=IngestSettings(max_bad_share=1.0))
        assert (result.pairs_added, result.ties_added, result.quarantined) == (3, 4, 4)
    finally:
        run.store.close()


def test_the_review_page_shows_the_ties_beside_the_pairs(tmp_path):
    from alignloop.report import write_review_page
    from tests.unit.test_review_page import _run_dir

    run_dir = _run_dir(tmp_path)
    plan = json.loads((run_dir / "plan.json").read_text())
    plan["shape"] = {**plan["shape"], "n_ties": 384, "n_both_bad": 7}
    (run_dir / "plan.json").write_text(json.dumps(plan))
    page = write_review_page(run_dir, target="t", champion=None, sources={}, version=1).read_text()
    assert "ties / both bad (kept, not trained on)</th><td>384 / 7" in page.replace("<td class=num>", "<td>")


def test_connectors_check_names_a_missing_column_of_an_answers_list(tmp_path, capsys):
    from alignloop.cli.connectors import check_source

    rows = [{"question": "Hi", "prediction 1": "x", "prediction 2": "y", "preference": [1]}]
    write_table(tmp_path / "wh.duckdb", "qa", rows)
    config = tmp_path / "alignloop.yaml"
    config.write_text(json.dumps({"base_model": {"tiny": True}, "sources": [{
        "name": "qa", "connector": "duckdb", "options": {"path": "wh.duckdb"}, "shape": "comparisons",
        "mapping": ANSWERS}]}))
    assert check_source(config, "qa") is False
    assert "rows: table qa lacks prediction 3 (for answers)" in " ".join(capsys.readouterr().out.split())
    two_answers = {"rows": {**ANSWERS["rows"], "answers": ["prediction 1", "prediction 2"]}}
    config.write_text(json.dumps({"base_model": {"tiny": True}, "sources": [{
        "name": "qa", "connector": "duckdb", "options": {"path": "wh.duckdb"}, "shape": "comparisons",
        "mapping": two_answers}]}))
    assert check_source(config, "qa") is True


def test_a_ranking_of_answer_objects_gives_a_vote_for_every_two_answers(tmp_path, shape_run):
    """Nectar-style rows: answers as {answer, model, rank} objects, no votes column. Every two answers of
    different rank are a decisive vote for the better (lower) rank, equal ranks a tie; each vote keeps the
    models that wrote its answers and the two ranks as written."""
    def ans(text, model, rank):
        return {"answer": text, "model": model, "rank": rank}

    rows = [
        {"prompt": "Name a prime.", "answers": [ans("7", "m1", 1.0), ans("9", "m2", 3.0), ans("2", "m3", 2.0)]},
        {"prompt": "Say hi.", "answers": [ans("Hi!", "m1", 1.0), ans("Hello!", "m2", 1.0)]},
        {"prompt": "Broken.", "answers": [ans("a", "m1", 1.0), ans("b", "m2", None)]},
        {"prompt": "Alone.", "answers": [ans("only", "m1", 1.0)]},
    ]
    wh = write_table(tmp_path / "wh.duckdb", "comparisons", rows)
    result = shape_run.ingest(wh, "comparisons")
    assert sorted(shape_run.rows("SELECT chosen, rejected, model_version FROM pairs")) == [
        ("2", "9", "m3 vs m2"), ("7", "2", "m1 vs m3"), ("7", "9", "m1 vs m2")]
    assert shape_run.rows("SELECT answer_a, answer_b, verdict FROM ties") == [("Hi!", "Hello!", "tie")]
    assert sorted(shape_run.rows("SELECT winner_raw FROM raw_comparisons WHERE prep_problem IS NULL")) == [
        ("[1.0, 1.0]",), ("[1.0, 2.0]",), ("[1.0, 3.0]",), ("[3.0, 2.0]",)]
    assert shape_run.reasons() == {"rank of answer 2 is missing, not a number": 1,
                                   "a ranking needs two answers or more (got 1)": 1}
    assert (result.pairs_added, result.ties_added, result.quarantined) == (3, 1, 2)


def test_a_ranks_column_ranks_answer_columns_and_answers_without_any_rank_are_refused(tmp_path, shape_run):
    rows = [{"q": "Pick.", "r1": "x", "r2": "y", "r3": "z", "order": [2, 1, 3], "model_version": "v7"},
            {"q": "Pick again.", "r1": "x", "r2": "y", "r3": "z", "order": [1, 2], "model_version": "v7"}]
    wh = write_table(tmp_path / "wh.duckdb", "comparisons", rows)
    mapping = {"rows": {"prompt": "q", "answers": ["r1", "r2", "r3"], "ranks": "order"}}
    shape_run.ingest(wh, "comparisons", mapping=mapping)
    # answers that are plain text keep the row's model_version
    assert sorted(shape_run.rows("SELECT chosen, rejected, model_version FROM pairs")) == [
        ("x", "z", "v7"), ("y", "x", "v7"), ("y", "z", "v7")]
    assert shape_run.reasons() == {"ranks holds 2 value(s) for 3 answers": 1}
    plain = write_table(tmp_path / "plain.duckdb", "comparisons", [{"prompt": "Hi", "answers": ["x", "y"]}])
    run = ShapeRun(tmp_path / "plain")
    run.ingest(plain, "comparisons")
    assert run.reasons() == {"answers carry no 'rank'; map a votes or a ranks column, or name the answers' rank key in "
                            "shape_options.ranked_by": 1}
    run.store.close()


def test_two_scores_stand_for_a_winner_and_a_dotted_mapping_reads_a_field_of_an_object(tmp_path, shape_run):
    """WebGPT-style rows: the question an object ({full_text}), each answer a score; the higher score wins,
    equal scores tie, a score that is no number is quarantined with its value. A row whose object lacks
    the field has no prompt."""
    def row(i, text, s0, s1):
        return {"question": {"dataset": "eli5", "full_text": text}, "answer_0": f"first {i}", "answer_1": f"second {i}",
                "score_0": s0, "score_1": s1}

    rows = [row(0, "Why?", 1.0, -1.0), row(1, "How?", -0.5, 0.5), row(2, "What?", 0.0, 0.0), row(3, "Who?", None, 1.0),
            {"question": {"dataset": "eli5"}, "answer_0": "x", "answer_1": "y", "score_0": 1.0, "score_1": 0.0}]
    wh = write_table(tmp_path / "wh.duckdb", "comparisons", rows)
    mapping = {"rows": {"prompt": "question.full_text", "answer_a": "answer_0", "answer_b": "answer_1",
                        "score_a": "score_0", "score_b": "score_1"}}
    result = shape_run.ingest(wh, "comparisons", mapping=mapping)
    assert sorted(shape_run.rows("SELECT prompt[1].content, chosen, rejected FROM pairs")) == [
        ("How?", "second 1", "first 1"), ("Why?", "first 0", "second 0")]
    assert shape_run.rows("SELECT prompt[1].content, verdict FROM ties") == [("What?", "tie")]
    assert shape_run.reasons() == {"score_a is missing, not a number": 1, "prompt is missing": 1}
    assert (result.pairs_added, result.ties_added, result.quarantined) == (2, 1, 2)


def test_a_column_named_with_a_dot_is_read_before_a_field_of_that_path(tmp_path, shape_run):
    rows = [{"q.text": "whole column", "q": {"text": "nested field"}, "answer_a": "x", "answer_b": "y", "winner": "a"}]
    wh = write_table(tmp_path / "wh.duckdb", "comparisons", rows)
    shape_run.ingest(wh, "comparisons", mapping={"rows": {"prompt": "q.text"}})
    assert shape_run.rows("SELECT prompt[1].content FROM pairs") == [("whole column",)]


def test_answers_scored_higher_is_better_under_a_named_key(tmp_path, shape_run):
    """UltraFeedback's own layout: {instruction, completions: [{model, response, overall_score, ...}]}; the
    score key is named and the highest is best."""
    def completion(model, text, score):
        return {"model": model, "response": text, "overall_score": score, "annotations": {"honesty": "5"}}

    rows = [{"instruction": "Add 2 and 2.", "completions": [completion("m1", "4", 9.0), completion("m2", "5", 2.5),
                                                            completion("m3", "four", 9.0)]}]
    wh = write_table(tmp_path / "wh.duckdb", "comparisons", rows)
    shape_run.ingest(wh, "comparisons", mapping={"rows": {"prompt": "instruction", "answers": "completions"}},
                     shape_options={"ranked_by": "overall_score", "best": "highest"})
    assert sorted(shape_run.rows("SELECT chosen, rejected FROM pairs")) == [("4", "5"), ("four", "5")]
    assert shape_run.rows("SELECT answer_a, answer_b FROM ties") == [("4", "four")]
