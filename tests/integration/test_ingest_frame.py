"""ingest_frame: Polars, pandas, Arrow or a callable of batches land exactly as a table connector's rows."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

from alignloop import stages
from alignloop.config import settings_from_dict
from alignloop.errors import ConfigError, TerminalError
from alignloop.ingest.frame import ingest_frame
from alignloop.ingest.store import FeedbackStore
from tests.integration.landing import ingest_from_warehouse, store_contents, warehouse_tables


def _as(kind: str, table: pa.Table):
    if kind == "polars":
        return pl.from_arrow(table)
    if kind == "pandas":
        return table.to_pandas()
    if kind == "callable":
        return lambda: iter(table.to_batches(max_chunksize=2))
    return table


@pytest.mark.parametrize("kind", ["arrow", "polars", "pandas", "callable"])
def test_frame_lands_exactly_what_the_table_connector_lands(tmp_path, small_warehouse, kind):
    tables = warehouse_tables(small_warehouse)
    data = {"generations": _as(kind, tables["generations"]), "feedback": _as(kind, tables["feedback_events"])}
    result = ingest_frame(tmp_path / "store.duckdb", "prod", data)
    with FeedbackStore(tmp_path / "store.duckdb") as store, FeedbackStore(tmp_path / "ref.duckdb") as ref:
        reference = ingest_from_warehouse(ref, small_warehouse, salt_of=store)
        assert store_contents(store) == store_contents(ref)
    assert (result.rows_read, result.unpaired_added, result.pairs_added, result.quarantined) == (
        reference.rows_read, reference.unpaired_added, reference.pairs_added, reference.quarantined)


def test_frame_source_from_the_config_is_cursored_and_idempotent(tmp_path, small_warehouse):
    tables = warehouse_tables(small_warehouse)
    feedback = tables["feedback_events"].rename_columns(
        ["id" if c == "event_id" else c for c in tables["feedback_events"].column_names])
    settings = settings_from_dict({
        "target": "t", "base_model": {"tiny": True},
        "sources": [{"name": "app", "connector": "dataframe", "mapping": {"feedback": {"event_id": "id"}}}],
    }, base_dir=tmp_path)
    data = {"generations": tables["generations"], "feedback": feedback}
    first = ingest_frame(settings, "app", data)
    again = ingest_frame(settings, "app", data)
    # The config alone has no frames: `alignloop ingest` reads nothing from the source and fails nothing.
    [from_config] = stages.ingest(settings)
    assert (first.unpaired_added, first.pairs_added) == (2, 1)
    assert (again.unpaired_added, again.pairs_added, sum(again.raw_added.values())) == (0, 0, 0)
    assert sum(from_config.rows_read.values()) == 0
    with FeedbackStore(settings.store_path) as store:
        assert store.source_cursors() == {"app.feedback": "2026-10-01T12:14:00", "app.generations": "2026-10-01T12:02:00"}


def test_callable_is_called_per_read_and_streamed_in_its_batches(tmp_path, small_warehouse):
    tables = warehouse_tables(small_warehouse)
    calls = []

    def feedback_batches():
        calls.append(1)
        yield from tables["feedback_events"].to_batches(max_chunksize=1)

    data = {"generations": tables["generations"], "feedback": feedback_batches}
    first = ingest_frame(tmp_path / "s.duckdb", "prod", data)
    ingest_frame(tmp_path / "s.duckdb", "prod", data)
    assert first.rows_read["feedback"] == 5
    assert len(calls) == 2


def test_bad_data_gets_one_line(tmp_path, small_warehouse):
    tables = warehouse_tables(small_warehouse)
    with pytest.raises(ConfigError, match=r"shape has inputs generations, feedback; pass data as a mapping"):
        ingest_frame(tmp_path / "s.duckdb", "prod", tables["generations"])
    with pytest.raises(ConfigError, match=r"'feedback_events' is not an input of the 'events' shape"):
        ingest_frame(tmp_path / "s.duckdb", "prod", {"generations": tables["generations"], "feedback_events": 1})
    with pytest.raises(TerminalError, match=r"dataframe: table 'feedback_events' is a list; pass a Polars or pandas"):
        ingest_frame(tmp_path / "s.duckdb", "prod", {"generations": tables["generations"], "feedback": [1, 2]})
    short = tables["feedback_events"].drop_columns(["kind"])
    with pytest.raises(TerminalError, match=r"has no column 'kind'.*mapping"):
        ingest_frame(tmp_path / "s.duckdb", "prod", {"generations": tables["generations"], "feedback": short})
    with FeedbackStore(tmp_path / "s.duckdb") as store:
        assert store.counts()["raw_events_generations"] == 0  # the failed ingest committed nothing


def test_a_callable_with_nothing_to_give_lands_nothing_and_a_wrong_one_is_one_line(tmp_path, small_warehouse):
    tables = warehouse_tables(small_warehouse)
    empty = ingest_frame(tmp_path / "s.duckdb", "prod", {"generations": lambda: iter(()), "feedback": lambda: []})
    assert sum(empty.rows_read.values()) == 0
    with pytest.raises(TerminalError, match=r"callable for table 'feedback_events' yielded a dict; yield pyarrow"):
        ingest_frame(tmp_path / "s.duckdb", "prod",
                     {"generations": tables["generations"], "feedback": lambda: iter([{"event_id": "x"}])})
    with pytest.raises(TerminalError, match=r"callable for table 'feedback_events' returned a int; return an iterable"):
        ingest_frame(tmp_path / "s.duckdb", "prod", {"generations": tables["generations"], "feedback": lambda: 3})


def test_a_single_table_shape_takes_one_frame_and_matches_the_files_connector(tmp_path):
    from alignloop.connectors.files import FilesConnector, FilesSettings
    from alignloop.config import SourceSettings
    from tests.integration.files_fixtures import write_file

    rows = pl.DataFrame({
        "question": ["What is 2 + 2?", "Capital of France?", "Largest planet?", "Capital of Italy?",
                     "Capital of France?"],
        "better": ["4.", "Paris.", "Jupiter.", "Rome.", "Paris."],
        "worse": ["5.", "Lyon.", "Mars.", "Milan.", "Paris."],   # the last pair is unusable: identical answers
    })  # one bad row in five: at, not above, the default ingest.max_bad_share
    mapping = {"rows": {"prompt": "question", "chosen": "better", "rejected": "worse"}}
    first = ingest_frame(tmp_path / "frame.duckdb", "labelled", rows, shape="preference", mapping=mapping)
    again = ingest_frame(tmp_path / "frame.duckdb", "labelled", rows, shape="preference", mapping=mapping)
    path = write_file(rows.to_arrow(), tmp_path / "prefs.parquet")
    src = SourceSettings(name="labelled", connector="files", options={"path": str(path)}, shape="preference",
                         mapping=mapping)
    with FeedbackStore(tmp_path / "files.duckdb") as via_files, FeedbackStore(tmp_path / "frame.duckdb") as via_frame:
        via_files.ingest(src, FilesConnector(FilesSettings(path=str(path))))
        query = "SELECT event_id, prompt, chosen, rejected FROM pairs ORDER BY event_id"
        assert via_frame.con.execute(query).fetchall() == via_files.con.execute(query).fetchall()
        assert via_frame.quarantine_reasons() == via_files.quarantine_reasons() == [
            ("chosen and rejected are identical", 1)]
    assert (first.pairs_added, first.quarantined) == (4, 1)
    assert (again.pairs_added, again.quarantined) == (0, 0)
