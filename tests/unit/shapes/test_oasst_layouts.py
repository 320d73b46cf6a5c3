"""OpenAssistant exports load the same in each of the three layouts they are published in (one message a row,
one tree a row, one root message a row with its answers nested), with or without `created_date`, gzipped or not,
through the files connector: the same ranks, thumbs and reasons, every message accounted for."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from alignloop.config import IngestSettings, SourceSettings
from alignloop.connectors.files import FilesConnector, FilesSettings
from alignloop.errors import ConfigError
from alignloop.ingest.store import FeedbackStore
from alignloop.shapes import resolve_mapping
from tests.unit.shapes.conftest import fixture_rows

MESSAGES = "oasst1_sample.messages.jsonl"  # the oasst1 columns: emojis and labels as {name: [...], count: [...]}
# What the sample holds: ranked replies to three prompter messages, net votes, a deleted reply and a reply
# with neither a rank nor a vote. (answer's first words, rank) and (answer's first words, thumb):
RANKS = [("Drink", 1), ("Get", 0), ("Keep", 0), ("La capital de Australia es Canberra.", 0),
         ("La capital de Australia es Sídney.", 1), ("Try", 1)]
THUMBS = [("Crisp", True), ("Drink", False), ("Get", True), ("Keep", True),
          ("La capital de Australia es Canberra.", True), ("Try", False)]
REASONS = {"deleted in the export": 1,
           'no preference signal: no differently ranked sibling and no net "+1"/"-1" vote': 1}


def _nested(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The roots of a flat export with their answers under `replies`, written as the trees export writes
    messages: no tree fields on them, emoji and labels as maps."""
    nodes = {}
    for r in rows:
        node = {k: v for k, v in r.items() if k not in ("message_tree_id", "tree_state")}
        if r["emojis"] is not None:
            node["emojis"] = dict(zip(r["emojis"]["name"], r["emojis"]["count"], strict=True))
        labels = r["labels"]
        node["labels"] = {n: {"value": v, "count": c} for n, v, c in zip(labels["name"], labels["value"],
                                                                         labels["count"], strict=True)}
        nodes[r["message_id"]] = {**node, "replies": []}
    roots = []
    for r in rows:
        node = nodes[r["message_id"]]
        (nodes[r["parent_id"]]["replies"] if r["parent_id"] else roots).append(node)
    return roots


def export(rows: list[dict[str, Any]], layout: str) -> list[dict[str, Any]]:
    if layout == "messages":
        return rows
    roots = _nested(rows)
    if layout == "roots":
        return roots
    return [{"message_tree_id": root["message_id"], "tree_state": "ready_for_export", "prompt": root} for root in roots]


def _without_dates(value: Any) -> Any:
    if isinstance(value, list):
        return [_without_dates(v) for v in value]
    if isinstance(value, dict):
        return {k: _without_dates(v) for k, v in value.items() if k != "created_date"}
    return value


def write_export(path: Path, rows: list[dict[str, Any]]) -> Path:
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return path


def ingest_file(tmp_path: Path, path: Path, **kw: Any):
    source = SourceSettings(name="oasst", connector="files", options={"path": str(path)}, shape="message_trees", **kw)
    store = FeedbackStore(tmp_path / "store.duckdb")
    result = store.ingest(source, FilesConnector(FilesSettings(path=str(path))),
                          settings=IngestSettings(max_bad_share=1.0))
    return store, result


def _first_words(text: str) -> str:
    return text if text.startswith("La capital") else text.split(":")[0].split()[0]


@pytest.mark.parametrize("dated", [True, False], ids=["created_date", "no-created_date"])
@pytest.mark.parametrize("layout, name", [
    ("messages", "2023-04-12_oasst_ready.messages.jsonl"),
    ("trees", "2023-04-12_oasst_ready.trees.jsonl.gz"),
    ("roots", "oasst_roots.jsonl.gz"),
    ("messages", "oasst.messages.jsonl.gz"),
    ("trees", "oasst.trees.jsonl"),
    ("roots", "oasst_roots.jsonl"),
])
def test_each_layout_gives_the_same_ranks_thumbs_and_reasons(tmp_path, layout, name, dated):
    rows = export(fixture_rows(MESSAGES), layout)
    if not dated:
        rows = _without_dates(rows)
    store, result = ingest_file(tmp_path, write_export(tmp_path / name, rows))
    with store:
        con = store.con
        ranks = sorted((_first_words(t), r) for t, r in con.execute("SELECT completion, rank FROM ranks").fetchall())
        thumbs = sorted((_first_words(t), lab)
                        for t, lab in con.execute("SELECT completion, label FROM unpaired").fetchall())
        reasons = dict(store.quarantine_reasons())
        observed = con.execute("SELECT DISTINCT ts_observed FROM raw_message_trees").fetchall()
        threads = con.execute("SELECT prompt FROM ranks WHERE completion LIKE 'Get out%'").fetchall()
    assert ranks == RANKS and thumbs == THUMBS and reasons == REASONS
    assert result.raw_added == {"rows": 13} and result.rows_read == {"rows": len(rows)}
    assert (result.ranks_added, result.unpaired_added, result.quarantined) == (6, 6, 2)
    # A second-level answer keeps its whole thread as the prompt.
    assert [len(p) for (p,) in threads] == [3]
    # Without created_date every message takes the landing time, kept as unobserved.
    assert observed == [(dated,)]


@pytest.mark.parametrize("layout", ["messages", "trees", "roots"])
def test_a_named_layout_reads_the_same_as_the_detected_one(tmp_path, layout):
    path = write_export(tmp_path / "export.jsonl", export(fixture_rows(MESSAGES), layout))
    store, result = ingest_file(tmp_path, path, shape_options={"layout": layout})
    with store:
        assert (result.ranks_added, result.unpaired_added, result.quarantined) == (6, 6, 2)


def test_a_layout_whose_columns_are_missing_names_the_column(tmp_path):
    from alignloop.errors import TerminalError

    path = write_export(tmp_path / "export.jsonl", export(fixture_rows(MESSAGES), "roots"))
    with pytest.raises(TerminalError, match=r"no column 'prompt'.*mapping\.rows"):
        ingest_file(tmp_path, path, shape_options={"layout": "trees"})


def test_an_unknown_layout_is_a_settings_error_naming_the_choices():
    with pytest.raises(ConfigError, match=r"shape_options\.layout: .*'messages', 'trees' or 'roots'"):
        resolve_mapping("message_trees", {}, "sources[oasst]", {"layout": "forest"})


def test_a_message_whose_created_date_is_broken_is_quarantined_and_its_tree_keeps_the_rest(tmp_path):
    rows = fixture_rows(MESSAGES)
    rows[11]["created_date"] = "yesterday"  # the haiku, the only thumb of its tree
    rows[6]["created_date"] = None          # "Try counting sheep.", ranked below its sibling
    store, result = ingest_file(tmp_path, write_export(tmp_path / "t.trees.jsonl", export(rows, "trees")))
    with store:
        reasons = dict(store.quarantine_reasons())
    assert reasons["ts 'yesterday' is not an ISO-8601 timestamp"] == 1 and reasons["ts is missing"] == 1
    assert (result.ranks_added, result.unpaired_added) == (4, 4)


def test_deep_trees_whose_levels_differ_lose_no_reply(tmp_path):
    """A reader types the deeper levels of such trees as JSON; every message still lands."""
    rows = fixture_rows(MESSAGES)
    trees = export(rows, "trees")
    # A thread ten levels deep below the haiku, whose levels carry a field of another type at each level.
    node = trees[2]["prompt"]["replies"][0]
    for depth in range(10):
        child = {"message_id": f"deep-{depth}", "parent_id": node["message_id"],
                 "role": ["prompter", "assistant"][depth % 2], "text": f"Level {depth}.", "rank": None,
                 "extra": {"depth": depth} if depth % 2 else f"level {depth}", "replies": []}
        node["replies"].append(child)
        node = child
    store, result = ingest_file(tmp_path, write_export(tmp_path / "deep.trees.jsonl", trees))
    with store:
        assert result.raw_added == {"rows": 23}
        assert store.con.execute("SELECT count(*) FROM raw_message_trees WHERE message_id LIKE 'deep-%'").fetchone() == (10,)
