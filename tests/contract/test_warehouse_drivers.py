"""Snowflake and BigQuery up to the driver call: options passed, SQL with bound values, error kinds,
no secret in any message. (The real services cannot be reached from here; see README.)"""

from __future__ import annotations

import sys
from datetime import datetime

import adbc_driver_manager
import pytest

from alignloop.connectors.adbc import BigQueryConnector, BigQuerySettings, SnowflakeConnector, SnowflakeSettings
from alignloop.connectors.base import ConnectorTerminalError, ConnectorTransientError, Window

PW = "sf-Secret-77"
KEY = '{"type": "service_account", "private_key": "-----BEGIN KEY-----abc"}'
W = Window(table="analytics.prefs", cursor_column="ts", start=datetime(2026, 10, 1), end=datetime(2026, 10, 2),
           columns=("id", "ts", "prompt"))


def _snowflake(**extra) -> SnowflakeConnector:
    return SnowflakeConnector(SnowflakeSettings.model_validate(
        {"account": "acme-prod", "user": "loader", "password": PW, "database": "FEEDBACK", "schema": "RAW",
         "warehouse": "LOAD_WH", "role": "READER", **extra}))


class _Refuse(Exception):
    pass


def _record(calls):
    def connect(**kwargs):
        calls.append(kwargs)
        raise _Refuse("stop after recording")
    return connect


def test_snowflake_passes_its_options_to_the_driver(monkeypatch):
    calls: list = []
    monkeypatch.setattr("adbc_driver_snowflake.dbapi.connect", _record(calls))
    with pytest.raises(ConnectorTerminalError):
        _snowflake().check()
    assert calls == [{"db_kwargs": {
        "adbc.snowflake.sql.account": "acme-prod", "username": "loader", "password": PW,
        "adbc.snowflake.sql.db": "FEEDBACK", "adbc.snowflake.sql.schema": "RAW",
        "adbc.snowflake.sql.warehouse": "LOAD_WH", "adbc.snowflake.sql.role": "READER"}}]


def test_snowflake_key_pair_auth_and_missing_credentials(monkeypatch):
    calls: list = []
    monkeypatch.setattr("adbc_driver_snowflake.dbapi.connect", _record(calls))
    with pytest.raises(ConnectorTerminalError):
        _snowflake(password=None, private_key="PKCS8-KEY").check()
    assert calls[0]["db_kwargs"]["adbc.snowflake.sql.auth_type"] == "auth_jwt"
    assert calls[0]["db_kwargs"]["adbc.snowflake.sql.client_option.jwt_private_key_pkcs8_value"] == "PKCS8-KEY"
    assert "password" not in calls[0]["db_kwargs"]
    with pytest.raises(ConnectorTerminalError, match="set options.password or options.private_key"):
        _snowflake(password=None).check()


def test_bigquery_passes_project_dataset_and_credentials(monkeypatch):
    calls: list = []
    monkeypatch.setattr("adbc_driver_bigquery.dbapi.connect", _record(calls))
    settings = BigQuerySettings(project="acme-analytics", dataset="feedback", credentials=KEY, location="EU")
    with pytest.raises(ConnectorTerminalError):
        BigQueryConnector(settings).check()
    assert calls == [{"db_kwargs": {
        "adbc.bigquery.sql.project_id": "acme-analytics", "adbc.bigquery.sql.dataset_id": "feedback",
        "adbc.bigquery.sql.location": "EU",
        "adbc.bigquery.sql.auth_type": "adbc.bigquery.sql.auth_type.json_credential_string",
        "adbc.bigquery.sql.auth_credentials": KEY}}]
    calls.clear()
    with pytest.raises(ConnectorTerminalError):
        BigQueryConnector(BigQuerySettings(project="p")).check()
    assert calls[0]["db_kwargs"]["adbc.bigquery.sql.auth_type"] == "adbc.bigquery.sql.auth_type.auth_bigquery"


def test_window_sql_quotes_identifiers_and_binds_bounds():
    sql, params = _snowflake().build_select(W)
    assert sql == ('SELECT "id", "ts", "prompt" FROM "analytics"."prefs" WHERE "ts" >= ? AND "ts" < ? '
                   'ORDER BY "ts"')
    assert params == [datetime(2026, 10, 1), datetime(2026, 10, 2)]
    sql, params = BigQueryConnector(BigQuerySettings(project="p")).build_select(
        Window(table="ds.we`ird", cursor_column="ts", start=datetime(2026, 10, 1)))
    assert sql == "SELECT * FROM `ds`.`we\\`ird` WHERE `ts` >= ? ORDER BY `ts`" and params == [datetime(2026, 10, 1)]
    sql, params = _snowflake().build_select(Window(table="t", cursor_column=None))
    assert (sql, params) == ('SELECT * FROM "t"', [])


def test_a_query_replaces_the_table_per_table_name():
    connector = _snowflake(query={"prefs": "SELECT * FROM raw.prefs WHERE kind = 'pair'"})
    sql, _ = connector.build_select(Window(table="prefs", cursor_column="ts"))
    assert sql == "SELECT * FROM (SELECT * FROM raw.prefs WHERE kind = 'pair') AS q ORDER BY \"ts\""
    sql, _ = connector.build_select(Window(table="other", cursor_column="ts"))
    assert sql == 'SELECT * FROM "other" ORDER BY "ts"'


@pytest.mark.parametrize(("status", "message", "kind"), [
    ("UNAUTHENTICATED", f"390100: Incorrect username or password was specified (password {PW})", ConnectorTerminalError),
    ("UNAUTHORIZED", "Insufficient privileges to operate on schema RAW", ConnectorTerminalError),
    ("NOT_FOUND", "Object 'PREFS' does not exist or not authorized", ConnectorTerminalError),
    ("IO", f"dial tcp acme-prod.snowflakecomputing.com:443: i/o timeout ({PW})", ConnectorTransientError),
    ("TIMEOUT", "query timed out", ConnectorTransientError),
    ("UNKNOWN", "503 Service Unavailable", ConnectorTransientError),
    ("UNKNOWN", "something odd happened", ConnectorTerminalError),
])
def test_driver_errors_are_classified_and_secret_free(monkeypatch, status, message, kind):
    def connect(**kwargs):
        raise adbc_driver_manager.OperationalError(
            message + "\nsecond line", status_code=getattr(adbc_driver_manager.AdbcStatusCode, status))

    monkeypatch.setattr("adbc_driver_snowflake.dbapi.connect", connect)
    with pytest.raises(kind) as caught:
        _snowflake().check()
    text = str(caught.value)
    assert PW not in text and "\n" not in text and text.startswith("snowflake: ")


def test_settings_never_show_secrets():
    connector = _snowflake()
    for shown in (repr(connector.settings), str(connector.settings), connector.settings.model_dump_json()):
        assert PW not in shown
    big = BigQuerySettings(project="p", credentials=KEY)
    assert "BEGIN KEY" not in repr(big) and "BEGIN KEY" not in big.model_dump_json()


def test_a_missing_driver_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "adbc_driver_snowflake.dbapi", None)  # import now raises ImportError
    with pytest.raises(ConnectorTerminalError, match=r"pip install 'alignloop\[warehouses\]'"):
        _snowflake().check()
