"""The `events` shape judges each feedback event on its generations' checks, then joins the texts of the
usable ones: every reason it gives, and the texts each canonical row gets, on both ingest paths (judged
before the transaction and inside it)."""

from __future__ import annotations

import json

import pytest

from alignloop.config import IngestSettings
from alignloop.ingest.store import FeedbackStore
from tests.conftest import chat
from tests.unit.test_loading import at, source, warehouse

Q1 = chat("What is the capital of France?")


def turns(*pairs: tuple[str, str | None]) -> str:
    return json.dumps([{"role": r, **({} if c is None else {"content": c})} for r, c in pairs])


GENS = [
    ("g1", at(0), "u1", "v1", Q1, "Paris."),
    ("g2", at(0), "u1", "v2", Q1, "Lyon."),
    ("g3", at(0), "u1", "v1", Q1, "Paris."),                 # the same answer as g1
    ("g4", at(0), "u1", "v1", chat("And of Italy?"), "Rome."),
    ("g5", at(0), "u1", "v1", Q1, None),                     # no answer
    ("g_obj", at(0), "u1", "v1", json.dumps({"role": "user", "content": "Hi"}), "Hello."),
    ("g_nocontent", at(0), "u1", "v1", turns(("user", None)), "Hello."),
    ("g_blank_turn", at(0), "u1", "v1", turns(("user", "Hi"), ("assistant", " \t")), "Hello."),
    ("g_ends", at(0), "u1", "v1", turns(("user", "Hi"), ("assistant", "Yo")), "Hello."),
]


def fb(event_id: str, rid: str | None, kind: str, value: str, other: str | None = None, user: str = "u1") -> tuple:
    return (event_id, rid, at(1), user, kind, value, other)


FEEDBACK = [
    fb("thumb", "g1", "thumb", "up"),
    fb("a_won", "g1", "comparison", "a", "g2"),
    fb("b_won", "g1", "comparison", "b", "g2", user="u2"),
    fb("same_answer", "g1", "comparison", "a", "g3"),
    fb("other_question", "g1", "comparison", "a", "g4"),
    fb("no_answer", "g5", "thumb", "down"),
    fb("other_no_answer", "g1", "comparison", "b", "g5"),
    fb("not_a_list", "g_obj", "thumb", "up"),
    fb("no_content", "g_nocontent", "thumb", "up"),
    fb("blank_turn", "g_blank_turn", "thumb", "up"),
    fb("ends", "g_ends", "thumb", "up"),
    fb("stars", "g1", "stars", "5"),
    fb("tie", "g1", "comparison", "tie", "g2"),
    fb("waits", "g_later", "thumb", "up"),
]


@pytest.mark.parametrize("prejudge", [True, False], ids=["judged-before-the-transaction", "judged-inside-it"])
def test_every_judgement_and_the_texts_each_usable_event_gets(tmp_path, monkeypatch, prejudge):
    if not prejudge:
        monkeypatch.setattr(FeedbackStore, "_prejudge", lambda *a: False)
    wh = warehouse(tmp_path / "wh.duckdb", GENS, FEEDBACK)
    src, conn = source(wh)
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        result = store.ingest(src, conn, settings=IngestSettings(max_bad_share=1.0))
        assert dict(store.quarantine_reasons()) == {
            "compared responses are identical": 1,
            "compared generations answer different messages": 1,
            "response is empty": 2,
            "messages is not a JSON list of {role, content} turns": 1,
            "a message turn has no content": 1,
            "a message turn is blank (whitespace only)": 1,
            "messages must end with the user's turn": 1,
            "kind must be 'thumb' or 'comparison'": 1,
            "comparison value must be 'a' or 'b' (ties carry no preference)": 1,
        }
        assert result.pending == 1
        assert store.con.execute("SELECT key, reason FROM pending").fetchall() == [
            ("waits", "pending: generation g_later not ingested yet")]
        unpaired = store.con.execute(
            "SELECT event_id = md5('prod:thumb'), to_json(prompt)::VARCHAR, completion, label, model_version "
            "FROM unpaired").fetchall()
        pairs = store.con.execute(
            "SELECT event_id = md5('prod:a_won'), to_json(prompt)::VARCHAR, chosen, rejected, model_version "
            "FROM pairs ORDER BY chosen").fetchall()
    prompt = json.dumps(json.loads(Q1), separators=(",", ":"))
    assert unpaired == [(True, prompt, "Paris.", True, "v1")]
    assert pairs == [(False, prompt, "Lyon.", "Paris.", "v1 vs v2"), (True, prompt, "Paris.", "Lyon.", "v1 vs v2")]
