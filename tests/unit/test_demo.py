"""The demo warehouse: exact schema, determinism, realistic structure, and a learnable, noisy signal."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from alignloop.demo import CAPITALS, QUALITY_ORDER, DemoSummary, build_prompts, write_demo_warehouse
from alignloop.errors import ConfigError

SMALL = {"n_prompts": 60, "n_feedback": 800}


def _rows(path: Path, table: str) -> list[tuple]:
    key = "request_id" if table == "generations" else "event_id"
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()


def _quality_of(seed: int, n_prompts: int) -> dict[tuple[str, str], str]:
    """(messages JSON, response) -> answer quality, from the demo's own prompt catalogue."""
    return {
        (prompt.messages_json, answer): quality
        for prompt in build_prompts(seed, n_prompts)
        for quality, answer in prompt.answers.items()
    }


def _labelled(path: Path) -> tuple[list[tuple], list[tuple]]:
    """Well-formed thumbs as (messages, response, value); comparisons as (messages, a, b, value)."""
    with duckdb.connect(str(path), read_only=True) as con:
        thumbs = con.execute(
            """SELECT g.messages, g.response, f.value FROM feedback_events f
               JOIN generations g USING (request_id)
               WHERE f.kind = 'thumb' AND f.value IN ('up', 'down')"""
        ).fetchall()
        comparisons = con.execute(
            """SELECT a.messages, a.response, b.messages, b.response, f.value FROM feedback_events f
               JOIN generations a ON a.request_id = f.request_id
               JOIN generations b ON b.request_id = f.other_request_id
               WHERE f.kind = 'comparison'"""
        ).fetchall()
    return thumbs, comparisons


def _true_thumb(quality: dict[tuple[str, str], str], thumb: tuple) -> str:
    messages, response, _ = thumb
    return "up" if quality[messages, response] == "good" else "down"


def _true_winner(quality: dict[tuple[str, str], str], comparison: tuple) -> str:
    messages, response_a, _, response_b, _ = comparison
    rank_a = QUALITY_ORDER.index(quality[messages, response_a])
    rank_b = QUALITY_ORDER.index(quality[messages, response_b])
    return "a" if rank_a < rank_b else "b"


def test_same_seed_writes_identical_rows_and_another_seed_does_not(tmp_path):
    first = write_demo_warehouse(tmp_path / "a.duckdb", seed=3, **SMALL)
    again = write_demo_warehouse(tmp_path / "b.duckdb", seed=3, **SMALL)
    other = write_demo_warehouse(tmp_path / "c.duckdb", seed=4, **SMALL)
    for table in ("generations", "feedback_events"):
        assert _rows(first.path, table) == _rows(again.path, table)
        assert _rows(first.path, table) != _rows(other.path, table)


def test_rewriting_replaces_the_file_instead_of_appending(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    write_demo_warehouse(path, seed=1, **SMALL)
    summary = write_demo_warehouse(path, seed=2, **SMALL)
    assert len(_rows(path, "generations")) == summary.n_generations
    fresh = write_demo_warehouse(tmp_path / "fresh.duckdb", seed=2, **SMALL)
    assert _rows(path, "feedback_events") == _rows(fresh.path, "feedback_events")


def test_tables_have_exactly_the_documented_columns_and_types(tmp_path):
    path = write_demo_warehouse(tmp_path / "w.duckdb", **SMALL).path
    with duckdb.connect(str(path), read_only=True) as con:
        columns = {
            table: [(row[0], row[1], row[3]) for row in con.execute(f"DESCRIBE {table}").fetchall()]
            for table in ("generations", "feedback_events")
        }  # DESCRIBE rows: name, type, null, key, ...
    assert columns["generations"] == [
        ("request_id", "VARCHAR", "PRI"), ("ts", "TIMESTAMP", None), ("user_id", "VARCHAR", None),
        ("model_version", "VARCHAR", None), ("messages", "VARCHAR", None), ("response", "VARCHAR", None),
    ]
    assert columns["feedback_events"] == [
        ("event_id", "VARCHAR", "PRI"), ("request_id", "VARCHAR", None), ("ts", "TIMESTAMP", None),
        ("user_id", "VARCHAR", None), ("kind", "VARCHAR", None), ("value", "VARCHAR", None),
        ("other_request_id", "VARCHAR", None),
    ]


def test_summary_counts_match_the_tables(tmp_path):
    summary = write_demo_warehouse(tmp_path / "w.duckdb", weeks=2, **SMALL)
    assert isinstance(summary, DemoSummary)
    with duckdb.connect(str(summary.path), read_only=True) as con:
        n_generations = con.execute("SELECT count(*) FROM generations").fetchone()[0]
        kinds = dict(con.execute("SELECT kind, count(*) FROM feedback_events GROUP BY kind").fetchall())
        n_messages = con.execute("SELECT count(DISTINCT messages) FROM generations").fetchone()[0]
    assert summary.n_generations == n_generations
    assert summary.n_feedback == 800 == kinds["thumb"] + kinds["comparison"]
    assert (summary.n_thumbs, summary.n_comparisons) == (kinds["thumb"], kinds["comparison"])
    assert summary.n_prompts == 60 == n_messages
    assert (summary.start, summary.end) == (datetime(2026, 10, 18), datetime(2026, 11, 1))
    assert 0.48 < kinds["thumb"] / 800 < 0.62  # about 55% thumbs


def test_messages_are_json_chats_ending_with_the_users_request(tmp_path):
    path = write_demo_warehouse(tmp_path / "w.duckdb", n_prompts=200, n_feedback=2000).path
    chats = {row[4] for row in _rows(path, "generations")}
    parsed = [json.loads(chat) for chat in chats]
    assert all(turns[-1]["role"] == "user" and turns[-1]["content"] for turns in parsed)
    assert all({turn["role"] for turn in turns} <= {"system", "user", "assistant"} for turns in parsed)
    multi_turn = sum(any(turn["role"] == "assistant" for turn in turns) for turns in parsed)
    assert 0.15 < multi_turn / len(parsed) < 0.35
    assert any(turns[0]["role"] == "system" for turns in parsed)
    assert max(sum(len(turn["content"].split()) for turn in turns) for turns in parsed) <= 40


def test_every_prompt_has_four_distinct_short_answers_and_good_ones_are_correct():
    capital_of = {country: capital for country, capital, _ in CAPITALS}
    prompts = build_prompts(seed=0, n_prompts=300)
    checked: dict[str, int] = defaultdict(int)
    assert len({p.messages_json for p in prompts}) == 300
    for prompt in prompts:
        assert set(prompt.answers) == set(QUALITY_ORDER)
        assert len(set(prompt.answers.values())) == 4
        assert all(len(answer.split()) < 70 for answer in prompt.answers.values())
        # Rambling restates the question (at least twice) before the correct statement.
        assert prompt.answers["rambling"].count(prompt.messages[-1]["content"]) >= 2
        question = prompt.messages[-1]["content"]
        if arithmetic := re.search(r"(\d+) ([+\-×]) (\d+)", question):
            a, op, b = int(arithmetic[1]), arithmetic[2], int(arithmetic[3])
            right = f"{a} {op} {b} = {({'+': a + b, '-': a - b, '×': a * b}[op])}."
            checked["arithmetic"] += 1
        elif capital := re.search(r"capital of (.+)\?", question):
            right = f"The capital of {capital[1]} is {capital_of[capital[1]]}."
            checked["capital"] += 1
        else:
            continue
        assert right in prompt.answers["good"]  # after the short answer, in the house style
        assert right not in prompt.answers["wrong"]
    assert checked["arithmetic"] > 10 and checked["capital"] > 10


def test_generations_ids_users_and_versions_look_like_production(tmp_path):
    summary = write_demo_warehouse(tmp_path / "w.duckdb", **SMALL)
    generations = _rows(summary.path, "generations")
    assert all(re.fullmatch(r"u_\d{5}", row[2]) for row in generations)
    assert 50 < len({row[2] for row in generations}) <= 400
    assert 2 <= len({row[3] for row in generations}) <= 3
    assert all(summary.start <= row[1] < summary.end for row in generations)
    with duckdb.connect(str(summary.path), read_only=True) as con:
        unrated = con.execute(
            """SELECT count(*) FROM generations g WHERE NOT EXISTS (
                 SELECT 1 FROM feedback_events f
                 WHERE g.request_id IN (f.request_id, f.other_request_id))"""
        ).fetchone()[0]
        repeated = con.execute(
            """SELECT count(*) FROM (
                 SELECT messages, response FROM generations GROUP BY ALL HAVING count(*) >= 3)"""
        ).fetchone()[0]
    assert unrated > summary.n_generations / 2  # most generations never get feedback
    assert repeated > 100  # the same answer to the same prompt is seen by several users


def test_feedback_comes_after_its_generations_within_two_days(tmp_path):
    summary = write_demo_warehouse(tmp_path / "w.duckdb", **SMALL)
    with duckdb.connect(str(summary.path), read_only=True) as con:
        delays = con.execute(
            """SELECT f.ts - g.ts FROM feedback_events f
               JOIN generations g ON g.request_id IN (f.request_id, f.other_request_id)"""
        ).fetchall()
        feedback_times = [row[0] for row in con.execute("SELECT ts FROM feedback_events").fetchall()]
    assert len(delays) > 800
    assert all(timedelta(0) <= delay <= timedelta(days=2) for (delay,) in delays)
    assert all(summary.start <= ts < summary.end for ts in feedback_times)


def test_comparisons_pair_two_different_answers_to_identical_messages(tmp_path):
    path = write_demo_warehouse(tmp_path / "w.duckdb", noise_rate=0, malformed_rate=0, n_feedback=2000).path
    _thumbs, comparisons = _labelled(path)
    assert len(comparisons) > 800
    for messages_a, response_a, messages_b, response_b, value in comparisons:
        assert messages_a == messages_b
        assert response_a != response_b
        assert value in ("a", "b")
    # A/B display order is randomised, so neither slot wins most of the time.
    assert 0.44 < sum(row[4] == "a" for row in comparisons) / len(comparisons) < 0.56


def test_without_noise_labels_follow_answer_quality_exactly(tmp_path):
    path = write_demo_warehouse(tmp_path / "w.duckdb", seed=5, noise_rate=0, malformed_rate=0, **SMALL).path
    quality = _quality_of(seed=5, n_prompts=60)
    thumbs, comparisons = _labelled(path)
    assert all(row[2] == _true_thumb(quality, row) for row in thumbs)
    values_per_answer = defaultdict(set)
    for messages, response, value in thumbs:
        values_per_answer[messages, response].add(value)
    assert all(len(values) == 1 for values in values_per_answer.values())
    assert all(row[4] == _true_winner(quality, row) for row in comparisons)


def test_noise_rate_flips_about_that_share_of_labels(tmp_path):
    path = write_demo_warehouse(tmp_path / "w.duckdb", noise_rate=0.3, malformed_rate=0, n_prompts=60,
                                n_feedback=2000).path
    quality = _quality_of(seed=0, n_prompts=60)
    thumbs, comparisons = _labelled(path)
    wrong_thumbs = sum(row[2] != _true_thumb(quality, row) for row in thumbs)
    wrong_comparisons = sum(row[4] != _true_winner(quality, row) for row in comparisons)
    assert 0.25 < (wrong_thumbs + wrong_comparisons) / (len(thumbs) + len(comparisons)) < 0.35
    values_per_answer = defaultdict(set)
    for messages, response, value in thumbs:
        values_per_answer[messages, response].add(value)
    contradicted = sum(len(values) == 2 for values in values_per_answer.values())
    assert contradicted > 0.3 * len(values_per_answer)  # users visibly disagree about the same answer


def test_malformed_events_appear_at_the_configured_rate_and_look_broken(tmp_path):
    summary = write_demo_warehouse(tmp_path / "w.duckdb", malformed_rate=0.05, n_prompts=60, n_feedback=2000)
    events = _rows(summary.path, "feedback_events")
    broken_thumbs = [e for e in events if e[4] == "thumb" and e[5] not in ("up", "down")]
    broken_comparisons = [e for e in events if e[4] == "comparison" and e[6] is None]
    assert len(broken_thumbs) + len(broken_comparisons) == 100
    assert {e[5] for e in broken_thumbs} == {None, "meh"}
    assert broken_comparisons and all(e[5] in ("a", "b") for e in broken_comparisons)
    assert all(e[6] is None for e in events if e[4] == "thumb")

    clean = write_demo_warehouse(tmp_path / "clean.duckdb", malformed_rate=0, n_prompts=60, n_feedback=2000)
    assert all(
        (e[4] == "thumb" and e[5] in ("up", "down")) or (e[4] == "comparison" and e[6] is not None)
        for e in _rows(clean.path, "feedback_events")
    )


def test_timezone_aware_end_is_stored_as_naive_utc(tmp_path):
    end = datetime(2026, 11, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    summary = write_demo_warehouse(tmp_path / "w.duckdb", end=end, weeks=1, **SMALL)
    assert (summary.start, summary.end) == (datetime(2026, 10, 25), datetime(2026, 11, 1))
    assert max(row[2] for row in _rows(summary.path, "feedback_events")) < datetime(2026, 11, 1)


@pytest.mark.parametrize(
    ("argument", "value"),
    [("noise_rate", 1.5), ("malformed_rate", -0.1), ("n_feedback", 0), ("weeks", 0), ("n_prompts", 0)],
)
def test_bad_arguments_name_the_setting(tmp_path, argument, value):
    with pytest.raises(ConfigError, match=argument):
        write_demo_warehouse(tmp_path / "w.duckdb", **{**SMALL, argument: value})



def _house_style(answer: str) -> bool:
    return answer.startswith("Short answer: ")


def test_the_house_style_users_prefer_is_on_most_good_answers_to_every_kind_of_question(tmp_path):
    # The part of the signal a LoRA can carry to unseen prompts: one form, short answer first, mostly on
    # good answers, so comparisons choose answers in that form far more often than they reject them.
    prompts = build_prompts(seed=0, n_prompts=300)
    styled = {q: sum(_house_style(p.answers[q]) for p in prompts) / len(prompts) for q in QUALITY_ORDER}
    assert styled["good"] > 0.75 and 0.02 < styled["wrong"] < 0.2
    assert styled["rambling"] == styled["rude"] == 0
    kinds = {re.sub(r"[\d']|\w+day", "", p.messages[-1]["content"])[:12] for p in prompts
             if _house_style(p.answers["good"])}
    assert len(kinds) > 10  # not one question type: the form says nothing about the question

    path = write_demo_warehouse(tmp_path / "w.duckdb", noise_rate=0, malformed_rate=0, n_prompts=60,
                                n_feedback=2000).path
    thumbs, comparisons = _labelled(path)
    chosen_styled = rejected_styled = 0
    for _, response_a, _, response_b, value in comparisons:
        chosen, rejected = (response_a, response_b) if value == "a" else (response_b, response_a)
        chosen_styled += _house_style(chosen)
        rejected_styled += _house_style(rejected)
    assert chosen_styled > 5 * rejected_styled > 0
    up_share = {style: sum(v == "up" for _, r, v in thumbs if _house_style(r) == style)
                / sum(_house_style(r) == style for _, r, _ in thumbs) for style in (True, False)}
    assert up_share[True] > 0.8 > 0.3 > up_share[False]


def test_the_demo_asks_its_generation_checks_for_enough_prompts_to_decide(tmp_path):
    from alignloop.config import load_settings
    from alignloop.demo import write_demo_config

    settings = load_settings(write_demo_config(tmp_path))
    # Fewer answered prompts than promotion.min_prompts leave the judged win rate unmeasured, never passed.
    assert settings.evaluation.generation_prompts >= max(32, settings.promotion.min_prompts)
    assert settings.evaluation.judge.kind == "probe" and settings.evaluation.judge.model_path is None


def test_the_demo_trains_with_the_sft_term_its_validation_runs_chose(tmp_path):
    from alignloop.config import load_settings
    from alignloop.demo import write_demo_config
    from alignloop.planner import choose_method

    settings = load_settings(write_demo_config(tmp_path))
    assert settings.training.sft_weight == 1.0 and settings.training.learning_rate == 3e-4
    # The setting reaches the loss: DPO's sigmoid loss plus TRL's SFT term, weighted as chosen.
    from alignloop.benchmarks.regimes import Regime
    from alignloop.profile import measure_profile

    unpaired, pairs = Regime("demo_like", n_pairs=400).build(seed=0)
    plan = choose_method(measure_profile(unpaired, pairs, 0.0), settings.training, settings.planning)
    assert plan.hyperparameters["loss_type"] == ["sigmoid", "sft"]
    assert plan.hyperparameters["loss_weights"] == [1.0, 1.0]
