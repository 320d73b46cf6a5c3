"""Snapshots are read in SQL and never change: the train/holdout split and the training cap run in DuckDB
with exactly is_holdout's membership, a stage fetches only the rows it uses, and a row fixed upstream
leaves every earlier snapshot as it was."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alignloop.ingest.store
from alignloop.config import settings_from_dict
from alignloop.schema import CONVERSATION, PAIRS_SCHEMA, UNPAIRED_SCHEMA, is_holdout
from alignloop.sqlfiles import sql_text
from alignloop.ingest.store import FeedbackStore
from tests.unit.test_loading import at, good_gen, source, warehouse

T0 = datetime(2026, 10, 1)
# Text that JSON escaping treats specially: quotes, backslashes, control characters, non-ASCII.
TRICKY = ['say "hi"', "back\\slash", "tab\there", "new\nline", "bell\x07", "\x1f unit", "café", "😀",
          "\u2028", "\x7f", "plain", ""]


# ------------------------------------------------------------------------------------ the split in SQL
# Text made of JSON's own punctuation: what a shortcut through DuckDB's to_json would get wrong.
_JSONISH = st.lists(st.sampled_from(['"', "\\", "{", "}", "[", "]", ",", ":", "null", '"role":', ',"content":',
                                     '"},', '"}]', "a", " ", "\n", "\x01", "é"]), max_size=8).map("".join)

@settings(max_examples=60, deadline=None)
@given(prompts=st.lists(st.lists(st.fixed_dictionaries({
    "role": st.one_of(st.sampled_from(["user", "assistant", "system"]), st.none(), st.text(max_size=5)),
    "content": st.one_of(st.text(max_size=30), st.none(), _JSONISH)}), max_size=4), min_size=1, max_size=40),
    fraction=st.floats(min_value=0.0, max_value=1.0))
def test_sql_holdout_membership_is_is_holdouts_for_any_text(prompts, fraction):
    con = duckdb.connect()
    con.execute(sql_text("holdout_macros.sql"))
    table = pa.table({"prompt": pa.array(prompts, type=CONVERSATION)})
    con.register("t", table)
    got = [r[0] for r in con.execute("SELECT holdout_position(prompt) < ? FROM t", [fraction]).fetchall()]
    hashed = [r[0] for r in con.execute("SELECT prompt_json_py(prompt) FROM t").fetchall()]
    turns = [r[0] for r in con.execute("SELECT prompt_json_py_turns(prompt) FROM t").fetchall()]
    con.close()
    assert got == [is_holdout(p, fraction) for p in prompts]
    # The text hashed, byte for byte (membership alone agrees by chance for most wrong texts).
    assert hashed == [json.dumps([[m["role"], m["content"]] for m in p], ensure_ascii=False)
                      for p in table.column("prompt").to_pylist()]
    # The reward model's prompt text: the turns as the store's rows read (role, then content).
    assert turns == [json.dumps(p, ensure_ascii=False) for p in table.column("prompt").to_pylist()]


def _random_rows(rng: random.Random, kind: str, n: int, start: int) -> list[dict]:
    prompts = [[{"role": "user", "content": f"{rng.choice(TRICKY)} question {i}"}] for i in range(25)]
    prompts += [[{"role": "system", "content": rng.choice(TRICKY)}, {"role": "user", "content": f"q{i}"}]
                for i in range(10)]
    rows = []
    for i in range(start, start + n):
        row = {"event_id": f"{kind}-{i:05d}", "source": "s", "ts": T0 + timedelta(minutes=rng.randrange(40)),
               "user_id": None, "model_version": "v", "prompt": rng.choice(prompts), "ts_observed": True}
        if kind == "unpaired":
            row |= {"completion": f"answer {rng.randrange(5)}", "label": rng.random() < 0.5}
        else:
            row |= {"chosen": f"good {rng.randrange(5)}", "rejected": f"bad {rng.randrange(5)}"}
        rows.append(row)
    return rows


def _fill(store: FeedbackStore, seed: int, n_unpaired: int, n_pairs: int, batches: int = 3) -> None:
    """Canonical rows written straight into the store over several batches (times tie often)."""
    rng = random.Random(seed)
    for b in range(1, batches + 1):
        for kind, n, schema in (("unpaired", n_unpaired, UNPAIRED_SCHEMA), ("pairs", n_pairs, PAIRS_SCHEMA)):
            rows = pa.Table.from_pylist(_random_rows(rng, kind, n // batches, b * 10_000), schema=schema)
            store.con.register("new_rows", rows)
            store.con.execute(f"INSERT INTO {kind} BY NAME SELECT *, {b} AS batch_id, now()::TIMESTAMP AS ingested_at "
                              "FROM new_rows")
            store.con.unregister("new_rows")
        store.con.execute("INSERT INTO ingest_log VALUES (?, 's', now(), now(), 0, 0, 0, 0, 0, 0, 0)", [b])


def _python_split(table: pa.Table, fraction: float, cap: int | None) -> tuple[list[dict], list[dict]]:
    """The split as it was done before it moved into SQL: every row as a dict, hashed, then sliced. The
    split's tables hold the canonical columns (a snapshot's pairs as read also say what they derive from)."""
    train, holdout = [], []
    if "derived_from" in table.column_names:
        table = table.drop_columns(["derived_from"])
    for row in table.to_pylist():
        (holdout if is_holdout(row["prompt"], fraction) else train).append(row)
    return (train[-cap:] if cap is not None else train), holdout


@pytest.mark.parametrize(("seed", "fraction", "cap"), [(0, 0.2, None), (1, 0.3, 7), (2, 0.5, 40), (3, 0.9, 1)])
def test_sql_split_and_cap_equal_the_python_split_row_for_row(tmp_path, seed, fraction, cap):
    with FeedbackStore(tmp_path / "store.duckdb") as store:
        _fill(store, seed, n_unpaired=150, n_pairs=120)
        snap = store.snapshot()
        unpaired, pairs = store.read_snapshot(snap)
        split = store.read_split(snap, fraction, cap)
    for table, train, holdout in ((unpaired, split.train_unpaired, split.holdout_unpaired),
                                  (pairs, split.train_pairs, split.holdout_pairs)):
        want_train, want_holdout = _python_split(table, fraction, cap)
        assert train.to_pylist() == want_train
        assert holdout.to_pylist() == want_holdout
        assert want_holdout and (cap is None or len(want_train) == cap)  # both sides were exercised


class _CountingConnection:
    """A DuckDB connection that adds up every row fetched from it; other ways of fetching are refused,
    so nothing reads around the count."""

    def __init__(self, con: duckdb.DuckDBPyConnection, fetched: list[int]) -> None:
        self._con, self._fetched = con, fetched

    def execute(self, *args, **kwargs):
        self._con.execute(*args, **kwargs)
        return self

    def to_arrow_table(self):
        table = self._con.to_arrow_table()
        self._fetched.append(table.num_rows)
        return table

    def fetchall(self):
        rows = self._con.fetchall()
        self._fetched.append(len(rows))
        return rows

    def fetchone(self):
        row = self._con.fetchone()
        self._fetched.append(row is not None)
        return row

    def __getattr__(self, name: str):
        if name.startswith("fetch") or name in {"arrow", "df", "pl", "record_batch", "torch", "tf"}:
            raise AssertionError(f"uncounted fetch {name}")
        return getattr(self._con, name)


def test_stages_fetch_only_the_capped_training_rows_and_the_holdout(tmp_path, monkeypatch):
    from alignloop import stages

    cap = 10
    settings_ = settings_from_dict({"target": "t", "base_model": {"tiny": True}, "sources": [{"name": "s"}],
                                    "evaluation": {"holdout_fraction": 0.2}, "training": {"max_train_examples": cap}},
                                   base_dir=tmp_path)
    with FeedbackStore(settings_.store_path) as store:
        _fill(store, seed=5, n_unpaired=300, n_pairs=300)
        snap = store.snapshot()
        unpaired, pairs = store.read_snapshot(snap)
    n_rows = unpaired.num_rows + pairs.num_rows
    n_holdout = sum(len(_python_split(t, 0.2, None)[1]) for t in (unpaired, pairs))

    fetched: list[int] = []
    connect = duckdb.connect
    monkeypatch.setattr(alignloop.ingest.store.duckdb, "connect",
                        lambda *a, **k: _CountingConnection(connect(*a, **k), fetched))
    split = stages._load_split(settings_, snap.snapshot_id)
    train_only = stages._load_split(settings_, snap.snapshot_id, holdout=False)
    monkeypatch.undo()

    assert (len(split.train_unpaired), len(split.train_pairs)) == (cap, cap)
    assert len(split.holdout_unpaired) + len(split.holdout_pairs) == n_holdout
    assert split.train_pairs == _python_split(pairs, 0.2, cap)[0]
    assert train_only.train_pairs == split.train_pairs and not train_only.holdout_pairs + train_only.holdout_unpaired
    # Both reads together: the capped training rows twice, the held-out rows once, and a few one-row
    # records as the store opens (its layout checks, the snapshot: at most 6 per read); the store held n_rows.
    records = sum(n <= 1 for n in fetched)
    assert records <= 12, fetched
    assert sum(fetched) == 2 * (2 * cap) + n_holdout + records, fetched
    assert sum(fetched) < n_rows / 3


@pytest.mark.parametrize("seed", [0, 1])
def test_the_plans_timed_steps_fetch_a_seeded_balanced_sample_of_training_rows_only(tmp_path, monkeypatch, seed):
    """planning.time_steps trains on a few rows: drawn in DuckDB (never the whole split as Python rows), from the
    training side only, thumbs up and down in equal numbers, the same rows for the same seed."""
    from alignloop import stages

    settings_ = settings_from_dict({"target": "t", "base_model": {"tiny": True}, "sources": [{"name": "s"}],
                                    "evaluation": {"holdout_fraction": 0.2}}, base_dir=tmp_path)
    with FeedbackStore(settings_.store_path) as store:
        _fill(store, seed=seed, n_unpaired=300, n_pairs=300)
        snap = store.snapshot()
        unpaired, pairs = store.read_snapshot(snap)
    train_unpaired, _ = _python_split(unpaired, 0.2, None)
    train_pairs, _ = _python_split(pairs, 0.2, None)

    fetched: list[int] = []
    connect = duckdb.connect
    monkeypatch.setattr(alignloop.ingest.store.duckdb, "connect",
                        lambda *a, **k: _CountingConnection(connect(*a, **k), fetched))
    sample = stages._sample_training_rows(settings_, snap, 12, seed=seed)
    again = stages._sample_training_rows(settings_, snap, 12, seed=seed)
    other = stages._sample_training_rows(settings_, snap, 12, seed=seed + 7)
    monkeypatch.undo()

    assert len(sample.train_pairs) == 12 and not sample.holdout_pairs + sample.holdout_unpaired
    assert [r["label"] for r in sample.train_unpaired].count(True) == 6 == [r["label"] for r in
                                                                           sample.train_unpaired].count(False)
    assert all(r in train_pairs for r in sample.train_pairs)            # training side, canonical rows as stored
    assert all(r in train_unpaired for r in sample.train_unpaired)
    assert sample == again and sample.train_pairs != other.train_pairs
    # At most 12 pairs and 12 of each label per read, and the store's one-row records as it opens (the store
    # held 600 rows).
    assert sum(n for n in fetched if n > 1) <= 3 * (12 + 24), fetched


def test_the_timed_steps_sample_only_the_newest_rows_a_capped_run_trains_on(tmp_path):
    """With training.max_train_examples, training reads each table's newest rows of the training side; the plan's
    timed steps draw their sample from those rows, not from older ones the run will never train on."""
    from alignloop import stages

    def split_settings(cap):
        return settings_from_dict({"target": "t", "base_model": {"tiny": True}, "sources": [{"name": "s"}],
                                   "evaluation": {"holdout_fraction": 0.2}, "training": {"max_train_examples": cap}},
                                  base_dir=tmp_path)

    with FeedbackStore(split_settings(40).store_path) as store:
        _fill(store, seed=3, n_unpaired=300, n_pairs=300)
        snap = store.snapshot()
        unpaired, pairs = store.read_snapshot(snap)
    newest_unpaired, _ = _python_split(unpaired, 0.2, 40)
    newest_pairs, _ = _python_split(pairs, 0.2, 40)
    capped = stages._sample_training_rows(split_settings(40), snap, 12, seed=0)
    assert len(capped.train_pairs) == 12 and all(r in newest_pairs for r in capped.train_pairs)
    assert capped.train_unpaired and all(r in newest_unpaired for r in capped.train_unpaired)
    uncapped = stages._sample_training_rows(split_settings(None), snap, 12, seed=0)
    assert not all(r in newest_pairs for r in uncapped.train_pairs)     # uncapped, older rows are drawn too


def test_shape_measures_the_training_side_without_building_row_dicts():
    """Python objects the shape allocates stay far below what the tables take as Python rows (Arrow and
    DuckDB memory is not traced: only Python objects are). Row dicts of the training side took 60 % of
    the reference here; columns and SQL take under 10 %."""
    import tracemalloc

    from alignloop.profile import measure_profile

    rng = random.Random(3)
    unpaired = pa.Table.from_pylist(_random_rows(rng, "unpaired", 8000, 0), schema=UNPAIRED_SCHEMA)
    pairs = pa.Table.from_pylist(_random_rows(rng, "pairs", 8000, 0), schema=PAIRS_SCHEMA)
    measure_profile(unpaired.slice(0, 20), pairs.slice(0, 20), 0.3, max_length=64, model_noise=False)  # imports
    tracemalloc.start()
    try:
        rows = (unpaired.to_pylist(), pairs.to_pylist())
        as_rows = tracemalloc.get_traced_memory()[1]
        del rows
        tracemalloc.reset_peak()
        shape = measure_profile(unpaired, pairs, 0.3, max_length=64, model_noise=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    expected_train = sum(not is_holdout(r["prompt"], 0.3) for r in unpaired.to_pylist())
    assert shape.n_unpaired_train == expected_train
    assert shape.truncation is not None and shape.truncation.rows == expected_train + shape.n_pairs_train
    assert peak < 0.25 * as_rows, (peak, as_rows)


# ------------------------------------------------------------------------------- immutable snapshots
def _fix_upstream(wh: Path, event_id: str, value: str) -> None:
    con = duckdb.connect(str(wh))
    con.execute("UPDATE feedback_events SET value = ?, ts = ts + INTERVAL 1 HOUR WHERE event_id = ?", [value, event_id])
    con.close()


def test_a_row_fixed_upstream_leaves_earlier_snapshots_unchanged(tmp_path):
    wh = warehouse(tmp_path / "wh.duckdb", [good_gen("r1", 0), good_gen("r2", 1, "Other?", "Yes.")],
                   [("f1", "r1", at(5), "u1", "thumb", "up", None), ("f2", "r2", at(6), "u2", "thumb", "up", None)])
    src, conn = source(wh)
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        store.ingest(src, conn)
        first = store.snapshot()
        first_rows = [t.to_pylist() for t in store.read_snapshot(first)]

        _fix_upstream(wh, "f2", "down")
        assert store.ingest(src, conn).replaced == 1
        second = store.snapshot()
        _fix_upstream(wh, "f2", "up")   # fixed back: the same content as the first snapshot, a third version
        assert store.ingest(src, conn).replaced == 1
        third = store.snapshot()

        assert [t.to_pylist() for t in store.read_snapshot(first)] == first_rows
        assert store.snapshot_identity(first.high_water_batch) == (first.snapshot_id, 2, 0)
        second_labels = {r["completion"]: r["label"] for r in store.read_snapshot(second)[0].to_pylist()}
        assert second_labels == {"Hello!": True, "Yes.": False}
        assert store.snapshot_identity(second.high_water_batch)[0] == second.snapshot_id
        assert len({first.snapshot_id, second.snapshot_id, third.snapshot_id}) == 3
        third_labels = {r["completion"]: r["label"] for r in store.read_snapshot(third)[0].to_pylist()}
        assert third_labels == {"Hello!": True, "Yes.": True}
        split = store.read_split(first, 0.5)
        assert sorted(r["event_id"] for r in (split.train_unpaired.to_pylist() + split.holdout_unpaired.to_pylist())) \
            == sorted(r["event_id"] for r in first_rows[0])
        # Everything but snapshots sees the current rows only: the superseded versions are set aside.
        assert store.counts()["unpaired"] == 2
        assert store.con.execute("SELECT count(*) FROM superseded_unpaired").fetchone()[0] == 2
        assert store.snapshot().snapshot_id == third.snapshot_id  # nothing new: the same id


def test_a_snapshot_with_no_replacement_keeps_its_id(tmp_path):
    """The id of an unchanged snapshot is md5 of its event ids, as stores written before kept it."""
    wh = warehouse(tmp_path / "wh.duckdb", [good_gen("r1", 0)], [("f1", "r1", at(5), "u1", "thumb", "up", None)])
    src, conn = source(wh)
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        store.ingest(src, conn)
        ids = [r[0] for r in store.con.execute("SELECT event_id FROM unpaired ORDER BY event_id").fetchall()]
        snap = store.snapshot()
    assert snap.snapshot_id == duckdb.sql(f"SELECT md5('{','.join(ids)}')").fetchone()[0]


def test_the_store_measures_a_snapshot_inside_duckdb_as_measure_shape_does_from_its_tables(tmp_path, monkeypatch):
    """`alignloop plan` measures the shape in the store's DuckDB (FeedbackStore.measure): the same profile as
    measure_profile over the snapshot read as Arrow, derived pairs included, and the same seeded sample of
    training rows for the tokenizer as measure_truncation draws from the whole training side."""
    from alignloop.config import BaseModelSettings
    from alignloop.models import load_base_tokenizer
    from alignloop.profile import lengths, measure_profile, measure_truncation

    monkeypatch.setattr(lengths, "SAMPLE_ROWS", 40)  # well under the training rows: the sampled fetch is used
    tokenizer = load_base_tokenizer(BaseModelSettings(tiny=True), tmp_path / "models")
    with FeedbackStore(tmp_path / "store.duckdb") as store:
        _fill(store, 5, n_unpaired=300, n_pairs=240)
        for table in ("unpaired", "pairs"):  # some rows carry a user: the annotator signals see them
            store.con.execute(f"UPDATE {table} SET user_id = 'u' || (hash(event_id) % 5) WHERE hash(event_id) % 3 = 0")
        prompt = [{"role": "user", "content": "Rank these"}]
        ranks = [("r0", 0, None, "g1", "first"), ("r1", 1, None, "g1", "second"), ("r2", 2, None, "g1", "third"),
                 ("s0", None, 5.0, "g2", "five stars"), ("s1", None, 2.0, "g2", "two stars")]
        for answer_id, rank, score, group, text in ranks:
            store.con.execute(
                "INSERT INTO ranks BY NAME SELECT md5(?) AS event_id, 's' AS source, ?::TIMESTAMP AS ts, "
                "?::STRUCT(role VARCHAR, content VARCHAR)[] AS prompt, ? AS completion, ?::BIGINT AS rank, "
                "?::DOUBLE AS score, CASE WHEN ? IS NULL THEN NULL ELSE 1.0 END AS pair_margin, ? AS group_id, "
                "? AS answer_id, 3 AS batch_id, now()::TIMESTAMP AS ingested_at, true AS ts_observed",
                [answer_id, T0, prompt, text, rank, score, score, group, answer_id])
        snap = store.snapshot()
        unpaired, pairs = store.read_snapshot(snap)
        assert sorted(pairs.column("derived_from").drop_null().to_pylist()) == ["ranks"] * 3 + ["ratings"]
        for kw in ({}, {"max_length_cap": 1024}, {"max_length": 24, "tokenizer": tokenizer},
                   {"max_length_cap": 1024, "tokenizer": tokenizer}):
            in_store = store.measure(snap, 0.3, **kw)
            assert in_store == measure_profile(unpaired, pairs, 0.3, **kw), kw
        assert in_store.derived["pairs_from_ranks"] == 3 and in_store.derived["pairs_from_ratings"] == 1
        # The sample the store fetched by row is the one measure_truncation draws from whole training tables.
        train_u, _ = _python_split(unpaired, 0.3, None)
        train_p, _ = _python_split(pairs, 0.3, None)
        whole = measure_truncation(pa.Table.from_pylist(train_u, schema=UNPAIRED_SCHEMA),
                                   pa.Table.from_pylist(train_p, schema=PAIRS_SCHEMA), None, tokenizer=tokenizer,
                                   sample_rows=40)
        assert whole.sampled_from == in_store.n_unpaired_train + in_store.n_pairs_train > 40
        assert in_store.truncation == whole
        # Nothing is left behind in the store's session.
        left = store.con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
        assert left == []
        views = store.con.execute("SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal").fetchall()
        assert views == []
