"""Answers written as chat messages load through the files connector: TRL's conversational preference and
KTO rows, UltraFeedback's whole conversations beside a text prompt, OpenAI's preference fine-tuning rows and
Chatbot Arena's conversation_a/conversation_b. A row whose messages do not reduce to one prompt and one
assistant answer per side is quarantined with the reason; a text answer that merely looks like JSON stays
the text it was."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alignloop import stages
from alignloop.config import settings_from_dict
from alignloop.errors import AlignloopError
from alignloop.ingest.store import FeedbackStore
from alignloop.pii import scrub_text
from tests.integration.test_text_properties import TEXT, is_plain


def U(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def A(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def ingest(tmp_path: Path, rows: list[dict[str, Any]], shape: str, **source: Any):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "export.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    settings = settings_from_dict({
        "target": "t", "base_model": {"tiny": True}, "ingest": {"max_bad_share": 1.0},
        "sources": [{"name": "src", "connector": "files", "options": {"path": str(path)}, "shape": shape, **source}],
    }, base_dir=tmp_path)
    (result,) = stages.ingest(settings)
    store = FeedbackStore(settings.store_path)
    return result, store


def pairs(store: FeedbackStore) -> list[tuple]:
    return store.con.execute("SELECT prompt, chosen, rejected FROM pairs ORDER BY chosen").fetchall()


def reasons(store: FeedbackStore) -> dict[str, int]:
    return dict(store.quarantine_reasons())


def test_trl_conversational_rows_and_ultrafeedback_conversations_give_the_same_pairs(tmp_path):
    trl = [{"prompt": [U(f"Question {i}?")], "chosen": [A(f"good {i}")], "rejected": [A(f"bad {i}")]} for i in range(3)]
    ultra = [{"prompt": f"Question {i}?", "prompt_id": str(i), "score_chosen": 8.0, "score_rejected": 4.5,
              "chosen": [U(f"Question {i}?"), A(f"good {i}")], "rejected": [U(f"Question {i}?"), A(f"bad {i}")]}
             for i in range(3)]
    expected = [([U(f"Question {i}?")], f"good {i}", f"bad {i}") for i in range(3)]
    for name, rows in (("trl", trl), ("ultra", ultra)):
        result, store = ingest(tmp_path / name, rows, "preference")
        with store:
            assert (result.pairs_added, result.quarantined) == (3, 0), name
            # the prompt's turn is not repeated from the conversation, and the answer is its text, no JSON
            assert pairs(store) == expected, name


def test_whole_conversations_as_transcripts_keep_their_shared_history_as_the_prompt(tmp_path):
    history = [{"role": "system", "content": "Be brief."}, U("Hi"), A("Hello!"), U("Name a prime.")]
    rows = [
        {"chosen": [*history, A("7")], "rejected": [*history, A("9")]},
        # the sides differ before the last turn: no single judged answer
        {"chosen": [U("Hi"), A("Hello!"), U("Bye"), A("Bye!")], "rejected": [U("Hi"), A("Hey"), U("Bye"), A("Ciao")]},
        # the last turn is the user's: no answer at all
        {"chosen": [U("Hi"), A("Hello"), U("ok")], "rejected": [U("Hi"), A("Hey"), U("ok")]},
        # one side missing
        {"chosen": [U("Hi"), A("Hello")], "rejected": None},
        # text parts, as chat APIs write content, are joined
        {"chosen": [U("Hi"), {"role": "assistant", "content": [{"type": "text", "text": "Hel"},
                                                                  {"type": "text", "text": "lo"}]}],
         "rejected": [U("Hi"), A("Go away")]},
    ]
    result, store = ingest(tmp_path, rows, "transcripts")
    with store:
        assert pairs(store) == [(history, "7", "9"), ([U("Hi")], "Hello", "Go away")]
        assert reasons(store) == {
            "chosen holds 3 turns after the prompt, not one assistant answer (the sides differ before their last turn)": 1,
            "chosen ends with a 'user' turn, not an assistant answer": 1,
            "rejected is missing": 1,
        }
        assert (result.rows_read["rows"], result.pairs_added, result.quarantined) == (5, 2, 3)


def test_conversational_kto_rows_give_thumbs(tmp_path):
    rows = [{"prompt": [U(f"Q {i}")], "completion": [A(f"answer {i}")], "label": i % 2 == 0} for i in range(4)]
    result, store = ingest(tmp_path, rows, "unpaired")
    with store:
        got = store.con.execute("SELECT prompt, completion, label FROM unpaired ORDER BY completion").fetchall()
        assert got == [([U(f"Q {i}")], f"answer {i}", i % 2 == 0) for i in range(4)]
        assert result.quarantined == 0


def test_openai_preference_fine_tuning_rows(tmp_path):
    rows = [{"input": {"messages": [{"role": "system", "content": "Terse."}, U(f"Q{i}")], "tools": [],
                       "parallel_tool_calls": True},
             "preferred_output": [A(f"yes {i}")], "non_preferred_output": [A(f"no {i}")]} for i in range(2)]
    mapping = {"rows": {"prompt": "input", "chosen": "preferred_output", "rejected": "non_preferred_output"}}
    _, store = ingest(tmp_path, rows, "preference", mapping=mapping)
    with store:
        assert pairs(store) == [([{"role": "system", "content": "Terse."}, U(f"Q{i}")], f"yes {i}", f"no {i}")
                                for i in range(2)]


def test_arena_battles_need_no_prompt_column_and_keep_ties(tmp_path):
    winners = ["model_a", "model_b", "tie", "tie (bothbad)"]
    rows = [{"question_id": f"q{i}", "model_a": "m1", "model_b": "m2", "winner": w, "judge": f"user {i}",
             "conversation_a": [U(f"hi {i}"), A(f"from a {i}")], "conversation_b": [U(f"hi {i}"), A(f"from b {i}")],
             "turn": 1, "tstamp": 1682351591.5 + i} for i, w in enumerate(winners)]
    rows.append({"question_id": "multi", "model_a": "m1", "model_b": "m2", "winner": "model_a", "judge": "u",
                 "conversation_a": [U("x"), A("a1"), U("y"), A("a2")], "conversation_b": [U("x"), A("b1"), U("y"), A("b2")],
                 "turn": 2, "tstamp": 1682351600.0})
    result, store = ingest(tmp_path, rows, "comparisons", mapping={"rows": {
        "id": "question_id", "answer_a": "conversation_a", "answer_b": "conversation_b", "annotator": "judge",
        "ts": "tstamp"}})
    with store:
        assert pairs(store) == [([U("hi 0")], "from a 0", "from b 0"), ([U("hi 1")], "from b 1", "from a 1")]
        ties = store.con.execute("SELECT prompt, answer_a, answer_b FROM ties ORDER BY answer_a").fetchall()
        assert ties == [([U("hi 2")], "from a 2", "from b 2"), ([U("hi 3")], "from a 3", "from b 3")]
        assert reasons(store) == {"answer_a holds 3 turns after the prompt, not one assistant answer "
                                  "(the sides differ before their last turn)": 1}
        assert (result.pairs_added, result.quarantined) == (2, 1)


def test_a_prompt_that_is_not_the_conversations_start_is_quarantined(tmp_path):
    rows = [{"prompt": "Something else?", "chosen": [U("Q?"), A("good")], "rejected": [U("Q?"), A("bad")]}]
    result, store = ingest(tmp_path, rows, "preference")
    with store:
        assert reasons(store) == {"prompt is not the end of the conversation chosen and rejected share before their "
                                  "answers": 1}
        assert result.pairs_added == 0


def test_text_that_looks_like_messages_stays_text(tmp_path):
    """Only answers the export stores as lists are read as messages; a string is text, byte for byte, even
    when it is JSON for a messages list (a column mixing lists and strings included)."""
    looks = json.dumps([A("not parsed")])
    rows = [{"prompt": "Q1", "chosen": looks, "rejected": "plain"},
            {"prompt": "Q2", "chosen": [A("real messages")], "rejected": [A("other")]}]
    _, store = ingest(tmp_path, rows, "preference")
    with store:
        assert pairs(store) == [([U("Q1")], looks, "plain"), ([U("Q2")], "real messages", "other")]


def test_comparisons_without_prompt_column_and_text_answers_is_a_config_error(tmp_path):
    rows = [{"answer_a": "x", "answer_b": "y", "winner": "a"}]
    with pytest.raises(AlignloopError, match="no column 'prompt'"):
        ingest(tmp_path, rows, "comparisons")


# ------------------------------------------------------------------------------------ arbitrary text
MESSAGE_TEXT = st.one_of(TEXT.filter(lambda t: isinstance(t, str) and len(t) < 2_000),
                         st.sampled_from([" ", "\n", "[EMAIL]", "x\\"]))


@st.composite
def message_rows(draw: Any) -> tuple[str, list[dict[str, Any]], list[tuple[str, str, str]]]:
    """(shape, rows, (prompt, chosen, rejected) texts per row): answers as messages, in the layouts above."""
    shape = draw(st.sampled_from(["preference", "transcripts", "comparisons"]))
    rows, texts = [], []
    for i in range(draw(st.integers(1, 3))):
        p, c, r = draw(MESSAGE_TEXT), draw(MESSAGE_TEXT), draw(MESSAGE_TEXT)
        texts.append((p, c, r))
        if shape == "preference":
            rows.append({"id": f"k{i}", "prompt": [U(p)], "chosen": [A(c)], "rejected": [A(r)]})
        elif shape == "transcripts":
            rows.append({"id": f"k{i}", "chosen": [U(p), A(c)], "rejected": [U(p), A(r)]})
        else:
            rows.append({"id": f"k{i}", "answer_a": [U(p), A(c)], "answer_b": [U(p), A(r)], "winner": "model_a"})
    return shape, rows, texts


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(example=message_rows())
def test_any_text_inside_messages_is_stored_as_written_or_quarantined(tmp_path_factory, example):
    """The text inside chat messages is data as any other: stored byte for byte (PII placeholders aside) or
    the row is quarantined with a one-line reason; plain text is never refused."""
    shape, rows, texts = example
    tmp_path = tmp_path_factory.mktemp("prop")
    result, store = ingest(tmp_path, rows, shape)
    with store:
        stored = {event_id: (prompt, chosen, rejected) for event_id, prompt, chosen, rejected
                  in store.con.execute("SELECT event_id, prompt, chosen, rejected FROM pairs").fetchall()}
        quarantined = store.con.execute("SELECT reason FROM quarantine").fetchall()
        assert all(reason and "\n" not in reason for (reason,) in quarantined)
        assert result.pairs_added + result.quarantined == result.rows_read["rows"] == len(rows)
        for i, (p, c, r) in enumerate(texts):
            hit = stored.get(hashlib.md5(f"src:k{i}".encode()).hexdigest())
            if hit is not None:  # exactly its text, placeholders aside
                assert hit == ([U(scrub_text(p))], scrub_text(c), scrub_text(r)), (p, c, r, hit)
            else:  # quarantined (counted above), and never for plain text
                assert not (is_plain(p) and is_plain(c) and is_plain(r) and c != r), (p, c, r, quarantined)


def test_prompts_in_dialogue_markup_are_read_as_their_turns(tmp_path):
    """HH-derived exports ({prompt, chosen, rejected} with the prompt in "\\n\\nHuman: ... \\n\\nAssistant:"
    markup, and Nectar's prompts) give the dialogue as turns, not one user turn holding the markers; text
    that is not a whole markup dialogue (no closing Assistant marker) stays one turn as written."""
    markup = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Name a prime.\n\nAssistant:"
    rows = [{"prompt": markup, "response": " 7", "chosen": " 7", "rejected": " 9"},
            {"prompt": "Human: what does 'Assistant:' mean?", "chosen": "a", "rejected": "b"}]
    _, store = ingest(tmp_path, rows, "preference")
    with store:
        assert pairs(store) == [([U("Hi there"), A("Hello!"), U("Name a prime.")], " 7", " 9"),
                                ([U("Human: what does 'Assistant:' mean?")], "a", "b")]


def test_the_documented_mappings_of_shp_pku_and_helpsteer_layouts_load(tmp_path):
    """docs/log-shapes.md's public-layout table, for the layouts the tests above do not load: each row lands
    with the verdict its export means (SHP labels 1 = A, PKU's better_response_id 0 = response_0)."""
    shp = [{"post_id": "p", "history": "Why is the sky blue?", "human_ref_A": "Rayleigh scattering.",
            "human_ref_B": "Dunno.", "labels": 1, "score_A": 10, "score_B": 2},
           {"post_id": "q", "history": "Why is grass green?", "human_ref_A": "Dunno.",
            "human_ref_B": "Chlorophyll.", "labels": 0, "score_A": 1, "score_B": 8}]
    _, store = ingest(tmp_path / "shp", shp, "comparisons", shape_options={"winner_values": {1: "a", 0: "b"}},
                      mapping={"rows": {"prompt": "history", "answer_a": "human_ref_A", "answer_b": "human_ref_B",
                                        "winner": "labels"}})
    with store:
        assert [(c, r) for _, c, r in pairs(store)] == [("Chlorophyll.", "Dunno."), ("Rayleigh scattering.", "Dunno.")]
    pku = [{"prompt": "How do I pick a lock?", "response_0": "Call a locksmith.", "response_1": "Use a pin.",
            "better_response_id": 0, "safer_response_id": 0},
           {"prompt": "Best pasta?", "response_0": "No idea.", "response_1": "Carbonara.", "better_response_id": 1,
            "safer_response_id": 1}]
    _, store = ingest(tmp_path / "pku", pku, "comparisons", shape_options={"winner_values": {0: "a", 1: "b"}},
                      mapping={"rows": {"answer_a": "response_0", "answer_b": "response_1",
                                        "winner": "better_response_id"}})
    with store:
        assert [(c, r) for _, c, r in pairs(store)] == [("Call a locksmith.", "Use a pin."), ("Carbonara.", "No idea.")]
    helpsteer = [{"prompt": "Explain DNS.", "response": r, "helpfulness": h, "correctness": 3}
                 for r, h in (("A phone book for the internet.", 4), ("It is a thing.", 1), ("Names to numbers.", 2))]
    result, store = ingest(tmp_path / "helpsteer", helpsteer, "ratings",
                           mapping={"rows": {"completion": "response", "score": "helpfulness"}},
                           shape_options={"min_score": 0, "max_score": 4, "up_threshold": 3, "down_threshold": 1})
    with store:
        thumbs = store.con.execute("SELECT completion, label FROM unpaired ORDER BY completion").fetchall()
        assert thumbs == [("A phone book for the internet.", True), ("It is a thing.", False)]
        assert result.quarantined == 0
