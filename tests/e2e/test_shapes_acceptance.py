"""`alignloop ingest` then `alignloop plan --json` on public-style exports with nothing but a tiny base
model configured: every input row ends as canonical rows or in quarantine with a reason, none lost,
none invented."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from alignloop.cli.main import app
from tests.unit.shapes.conftest import FIXTURES, fixture_rows

H, A = "\n\nHuman: ", "\n\nAssistant: "
pytestmark = pytest.mark.slow  # the CLI's plan imports the training stack once (~8 s)

TOPICS = ["tea", "rivers", "owls", "bridges", "jazz", "glaciers", "chess", "bread", "comets", "maps", "bees",
          "kites", "salt", "lighthouses", "moss", "violins", "deserts", "ferns", "tides", "clocks"]


def transcript_rows() -> tuple[list[dict[str, str]], int, dict[str, int]]:
    """(rows, usable rows, broken rows by reason): one- and two-turn dialogues, plus broken ones."""
    rows = []
    for i, topic in enumerate(TOPICS):
        history = H + f"Tell me about {topic}."
        if i % 2:
            history += A + f"Sure, {topic} are interesting." + H + "Go on, one fact."
        rows.append({"chosen": history + A + f"A true fact about {topic}.",
                     "rejected": history + A + f"I will not talk about {topic}."})
    broken = {
        "chosen and rejected do not share the history up to the last assistant turn": [
            {"chosen": H + "Hi" + A + "Hello." + H + "Fact?" + A + "Owls turn heads.",
             "rejected": H + "Hi" + A + "Go away." + H + "Fact?" + A + "No."}],
        "chosen's final answer is empty": [{"chosen": H + "Why?" + A, "rejected": H + "Why?" + A + "Because."}],
        "rejected's final answer is empty": [{"chosen": H + "Why?" + A + "Because.", "rejected": H + "Why?" + A + "\n"}],
        "chosen is not a dialogue of 'Human:' and 'Assistant:' turns": [
            {"chosen": "just text", "rejected": H + "Q" + A + "A"}],
        "rejected does not end with an Assistant turn": [
            {"chosen": H + "Q" + A + "A", "rejected": H + "Q" + A + "B" + H + "C"}],
    }
    return rows + [r for rs in broken.values() for r in rs], len(rows), {k: len(v) for k, v in broken.items()}


def run_cli(tmp_path: Path, source: dict) -> tuple[dict, duckdb.DuckDBPyConnection]:
    config = tmp_path / "alignloop.yaml"
    config.write_text(yaml.safe_dump({"sources": [source], "base_model": {"tiny": True}}))  # nothing else
    runner = CliRunner()
    for args in (["ingest"], ["plan", "--json"]):
        result = runner.invoke(app, [*args, "--config", str(config)])
        assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    return plan, duckdb.connect(str(tmp_path / "feedback.duckdb"), read_only=True)


def test_transcripts_jsonl_gz_every_row_is_a_pair_or_quarantined(tmp_path):
    rows, usable, broken = transcript_rows()
    path = tmp_path / "hh.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    plan, store = run_cli(tmp_path, {"name": "hh", "connector": "files", "options": {"path": str(path)},
                                     "shape": "transcripts"})
    try:
        assert plan["shape"]["n_pairs"] == usable and plan["shape"]["n_unpaired"] == 0
        reasons = dict(store.execute("SELECT reason, count(*) FROM quarantine GROUP BY 1").fetchall())
        assert reasons == broken
        assert plan["shape"]["n_pairs"] + sum(reasons.values()) == len(rows)
        # None invented: each pair's answers are the final turns of one input row, prompt its history.
        got = store.execute("SELECT prompt, chosen, rejected FROM pairs").fetchall()
        expected = {(r["chosen"].rsplit(A, 1)[1], r["rejected"].rsplit(A, 1)[1]) for r in rows[:usable]}
        assert {(c, r) for _, c, r in got} == expected
        assert all(p[-1]["role"] == "user" and p[0]["content"].startswith("Tell me about") for p, _, _ in got)
        assert plan["shape"]["derived"]["thumbs_from_pairs"] == 2 * usable
        assert plan["shape"]["derived"]["pairs_from_ranks"] == 0
    finally:
        store.close()


def test_message_tree_export_every_message_is_used_or_quarantined(tmp_path):
    export = FIXTURES / "message_trees_messages.jsonl"
    plan, store = run_cli(tmp_path, {"name": "oasst", "connector": "files", "options": {"path": str(export)},
                                     "shape": "message_trees"})
    try:
        messages = fixture_rows("message_trees_messages.jsonl")
        # 3 ranks stored as observed (0 > 1 > 2 of three siblings); the plan reads the 3 pairs they give,
        # counted as derived from ranks, none as observed. 3 thumbs (net votes +3, -2, +1; a 1-1 tie gives none).
        assert _stored(store) == (3, 0, 3)
        assert (plan["shape"]["n_pairs"], plan["shape"]["derived"]["pairs_from_ranks"]) == (3, 3)
        assert (plan["shape"]["n_unpaired"], plan["shape"]["n_up"]) == (3, 2)
        quarantined = {json.loads(p)["message_id"] for (p,) in store.execute("SELECT payload FROM quarantine").fetchall()}
        used = {"m1", "a1", "a2", "a3", "m2", "a4"}   # answers in a pair or thumb, and the turns above them
        assert quarantined == {m["message_id"] for m in messages} - used
        assert len(quarantined) + len(used) == len(messages)
        texts = {m["text"] for m in messages}
        answers = store.execute("SELECT completion FROM ranks UNION ALL SELECT completion FROM unpaired")
        assert {t for (t,) in answers.fetchall()} <= texts
    finally:
        store.close()


def _stored(store: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
    """(ranks, pairs, thumbs) stored."""
    return store.execute("SELECT (SELECT count(*) FROM ranks), (SELECT count(*) FROM pairs), "
                         "(SELECT count(*) FROM unpaired)").fetchone()


def _tree_ids(node: dict) -> set[str]:
    return {node["message_id"]} | {i for child in node.get("replies") or [] for i in _tree_ids(child)}


def test_nested_tree_export_every_message_is_used_or_quarantined_and_a_rerun_adds_nothing(tmp_path):
    export = FIXTURES / "message_trees_trees.jsonl"
    plan, store = run_cli(tmp_path, {"name": "oasst", "connector": "files", "options": {"path": str(export)},
                                     "shape": "message_trees"})
    try:
        ids = {i for tree in fixture_rows("message_trees_trees.jsonl") for i in _tree_ids(tree["prompt"])}
        assert _stored(store) == (3, 0, 3)
        assert (plan["shape"]["n_pairs"], plan["shape"]["derived"]["pairs_from_ranks"], plan["shape"]["n_unpaired"]) \
            == (3, 3, 3)
        quarantined = {json.loads(p)["message_id"] for (p,) in store.execute("SELECT payload FROM quarantine").fetchall()}
        assert quarantined == ids - {"m1", "a1", "a2", "a3", "m2", "a4"} == {"a9", "a5", "m3"}
        before = store.execute("SELECT (SELECT count(*) FROM ranks), (SELECT count(*) FROM pairs), "
                               "(SELECT count(*) FROM unpaired), (SELECT count(*) FROM quarantine)").fetchone()
    finally:
        store.close()
    result = CliRunner().invoke(app, ["ingest", "--config", str(tmp_path / "alignloop.yaml")])
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(tmp_path / "feedback.duckdb"), read_only=True) as again:
        assert again.execute("SELECT (SELECT count(*) FROM ranks), (SELECT count(*) FROM pairs), "
                             "(SELECT count(*) FROM unpaired), (SELECT count(*) FROM quarantine)").fetchone() == before
