"""The files connector on S3: a real S3-compatible server on loopback (moto, signatures checked), DuckDB's
httpfs from its offline wheel, keys only through ${ENV} and never in any message."""

from __future__ import annotations

import gzip
import json

import pytest

from alignloop.connectors.base import ConnectorTerminalError, ConnectorTransientError
from alignloop.connectors.files import FilesConnector, FilesSettings
from alignloop import stages
from alignloop.config import settings_from_dict
from alignloop.errors import TerminalError
from alignloop.ingest.store import FeedbackStore
from tests.integration.files_fixtures import file_bytes
from tests.integration.landing import ingest_from_warehouse, store_contents, warehouse_tables
from tests.integration.s3_server import S3Server, s3_server


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        server.client().create_bucket(Bucket="feedback")
        yield server


def _config(s3: S3Server, path: str) -> dict:
    return {
        "target": "t", "base_model": {"tiny": True},
        # The feedback file added last holds one bad row of two: no share of bad rows stops the test.
        "ingest": {"max_bad_share": 1.0},
        "sources": [{
            "name": "prod", "connector": "files",
            "options": {"path": path, "endpoint": s3.endpoint, "url_style": "path", "use_ssl": False,
                        "access_key_id": "${S3_KEY_ID}", "secret_access_key": "${S3_SECRET}"},
        }],
    }


@pytest.mark.slow
def test_s3_glob_lands_the_table_rows_and_new_objects_only(tmp_path, small_warehouse, s3, monkeypatch):
    monkeypatch.setenv("S3_KEY_ID", s3.access_key_id)
    monkeypatch.setenv("S3_SECRET", s3.secret_access_key)
    tables = warehouse_tables(small_warehouse)
    client = s3.client()
    gen = tables["generations"]
    client.put_object(Bucket="feedback", Key="land/generations/a.jsonl.gz", Body=file_bytes(gen, "jsonl.gz"))
    fb = tables["feedback_events"]
    client.put_object(Bucket="feedback", Key="land/feedback_events/a.parquet", Body=file_bytes(fb.slice(0, 3), "parquet"))
    settings = settings_from_dict(_config(s3, "s3://feedback/land/{table}/*"), base_dir=tmp_path)

    [first] = stages.ingest(settings)
    [again] = stages.ingest(settings)
    client.put_object(Bucket="feedback", Key="land/feedback_events/b.csv.gz", Body=file_bytes(fb.slice(3), "csv.gz"))
    [third] = stages.ingest(settings)

    assert first.rows_read == {"generations": 3, "feedback": 3}
    assert again.rows_read == {"generations": 0, "feedback": 0}
    assert third.rows_read == {"generations": 0, "feedback": 2}
    with FeedbackStore(settings.store_path) as store:
        via_s3 = store_contents(store)
        salt = store.user_salt
        loaded = [r[0] for r in store.con.execute("SELECT file FROM loaded_files ORDER BY file").fetchall()]
    with FeedbackStore(tmp_path / "reference.duckdb") as store:
        ingest_from_warehouse(store, small_warehouse, salt_of=salt)
        assert via_s3 == store_contents(store)
    assert loaded == ["s3://feedback/land/feedback_events/a.parquet", "s3://feedback/land/feedback_events/b.csv.gz",
                      "s3://feedback/land/generations/a.jsonl.gz"]
    # The keys are nowhere in the store file.
    assert s3.secret_access_key.encode() not in settings.store_path.read_bytes()


def test_wrong_secret_fails_fast_without_showing_it(tmp_path, s3, monkeypatch):
    wrong = "WRONGsecretVALUE0123456789"
    monkeypatch.setenv("S3_KEY_ID", s3.access_key_id)
    monkeypatch.setenv("S3_SECRET", wrong)
    settings = settings_from_dict(_config(s3, "s3://feedback/land/{table}/*"), base_dir=tmp_path)
    with pytest.raises(TerminalError) as err:
        stages.ingest(settings)
    message = str(err.value)
    assert "refused the request" in message and "options.secret_access_key" in message
    assert wrong not in message and s3.secret_access_key not in message and "\n" not in message


def test_unreachable_endpoint_is_transient(s3):
    # A port nothing listens on: retrying later may help, so the flow retries it.
    conn = FilesConnector(FilesSettings(
        path="s3://feedback/x/*.jsonl", endpoint="127.0.0.1:9", url_style="path", use_ssl=False,
        access_key_id="k", secret_access_key="s",
    ))
    with pytest.raises(ConnectorTransientError, match="unreachable.*options.endpoint"):
        conn.check()


def test_missing_bucket_is_terminal(s3):
    conn = FilesConnector(FilesSettings(
        path="s3://no-such-bucket/x/*.jsonl", endpoint=s3.endpoint, url_style="path", use_ssl=False,
        access_key_id=s3.access_key_id, secret_access_key=s3.secret_access_key,
    ))
    with pytest.raises(ConnectorTerminalError, match="bucket name"):
        conn.check()


def test_s3_json_array_with_one_element_of_invalid_utf8_quarantines_only_it(tmp_path, s3, monkeypatch):
    """An object DuckDB refuses is read again from its downloaded bytes, element by element."""
    monkeypatch.setenv("S3_KEY_ID", s3.access_key_id)
    monkeypatch.setenv("S3_SECRET", s3.secret_access_key)
    rows = [{"id": f"r{i}", "ts": f"2026-11-02T10:0{i}:00Z", "prompt": "Q?", "completion": f"Answer {i}.",
             "label": "up"} for i in range(4)]
    data = json.dumps(rows).encode().replace(b"Answer 2.", b"caf\xe9")
    s3.client().put_object(Bucket="feedback", Key="arrays/export.json.gz", Body=gzip.compress(data))
    config = _config(s3, "s3://feedback/arrays/*.json.gz")
    config["sources"][0]["shape"] = "unpaired"
    settings = settings_from_dict(config, base_dir=tmp_path)
    [result] = stages.ingest(settings)
    with FeedbackStore(settings.store_path) as store:
        answers = store.con.execute("SELECT completion FROM unpaired ORDER BY ALL").fetchall()
        [(reason, payload)] = store.con.execute("SELECT reason, payload FROM quarantine").fetchall()
    assert answers == [("Answer 0.",), ("Answer 1.",), ("Answer 3.",)]
    assert reason == "element 2 of export.json.gz is not valid UTF-8 (its bytes are kept as \\xNN escapes)"
    assert json.loads(payload)["completion"] == "caf\\xe9"
    assert (result.rows_read, result.quarantined) == ({"rows": 4}, 1)
