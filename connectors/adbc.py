"""Read feedback tables from Snowflake and BigQuery through their ADBC drivers (Arrow end to end).

UNTESTED against the real services: they cannot be reached from where alignloop is built. Tests cover
everything up to the driver's connect call (the options passed, the SQL built with bound values,
error classification, no secret in messages) and run the connector contract with a local ADBC
driver standing in for the service (tests/contract/providers/{snowflake,bigquery}.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from alignloop.connectors.base import (
    ConnectorError,
    ConnectorTerminalError,
    ConnectorTransientError,
    Window,
    quote_identifier,
)

# ADBC status codes (adbc_driver_manager.AdbcStatusCode) that a retry may cure.
_TRANSIENT_STATUS = {"IO", "TIMEOUT", "CANCELLED"}
_TERMINAL_WORDS = ("authentication", "unauthenticated", "unauthorized", "permission", "denied", "incorrect username",
                   "invalid credentials", "does not exist", "not found", "invalid identifier", "no such")
_TRANSIENT_WORDS = ("timeout", "timed out", "connection refused", "connection reset", "temporarily unavailable",
                    "service unavailable", "too many requests", "rate limit", "eof", "i/o")


class AdbcReader:
    """Connects through an ADBC driver module, SELECTs a window with bound values, re-batches. Snowflake
    and BigQuery each hold one (composition, not a base class: each connector is its own class with its
    own check and read) and give it their name, driver module, connect options and identifier quoting."""

    def __init__(self, name: str, driver_module: str, settings: Any, connect_kwargs: Callable[[], dict[str, Any]],
                 quote: Callable[[str], str] = quote_identifier) -> None:
        self.name = name
        self.driver_module = driver_module
        self.settings = settings
        self.connect_kwargs = connect_kwargs
        self.quote = quote

    def secrets(self) -> list[str]:
        return [v.get_secret_value() for v in self.settings.__dict__.values() if isinstance(v, SecretStr)]

    # ------------------------------------------------------------------ shared
    def _scrub(self, text: str) -> str:
        for secret in sorted((s for s in self.secrets() if s), key=len, reverse=True):
            text = text.replace(secret, "***")
        return " ".join((text.strip().splitlines() or [""])[0].split())

    def classify(self, error: Exception) -> ConnectorError:
        """Terminal or transient, by the driver's status code first, then by its words; secret-free."""
        status = getattr(getattr(error, "status_code", None), "name", "")
        text = self._scrub(str(error))
        low = text.lower()
        if status in _TRANSIENT_STATUS or (status not in {"UNAUTHENTICATED", "UNAUTHORIZED", "NOT_FOUND"}
                                           and any(w in low for w in _TRANSIENT_WORDS)
                                           and not any(w in low for w in _TERMINAL_WORDS)):
            return ConnectorTransientError(f"{self.name}: {text}; it is retried")
        return ConnectorTerminalError(f"{self.name}: {text}; check the source's options (credentials, names)")

    def _driver(self) -> Any:
        try:
            return importlib.import_module(f"{self.driver_module}.dbapi")
        except ImportError:
            raise ConnectorTerminalError(
                f"{self.name}: its ADBC driver is not installed; pip install 'alignloop[warehouses]' "
                f"(or {self.driver_module.replace('_', '-')})"
            ) from None

    def _connect(self) -> Any:
        try:
            return self._driver().connect(**self.connect_kwargs())
        except ConnectorError:
            raise
        except Exception as e:  # drivers raise their own DB-API error classes
            raise self.classify(e) from None

    def check(self) -> None:
        con = self._connect()
        try:
            cur = con.cursor()
            cur.execute("SELECT 1")
            cur.fetchall()
        except Exception as e:
            raise self.classify(e) from None
        finally:
            con.close()

    def build_select(self, window: Window) -> tuple[str, list[Any]]:
        """The window's SELECT (identifiers quoted, bounds as `?` parameters) and its parameters."""
        relation = self.settings.query and self._query_for(window.table)
        source = f"({relation}) AS q" if relation else self.quote(window.table)
        cols = ", ".join(self.quote(c) for c in window.columns) if window.columns else "*"
        if not window.cursor_column:  # no cursor: the whole source (the core skips landed rows by key)
            return f"SELECT {cols} FROM {source}", []
        cursor = self.quote(window.cursor_column)
        where, params = [], []
        if window.start is not None:
            where.append(f"{cursor} >= ?")
            params.append(window.start)
        if window.end is not None:
            where.append(f"{cursor} < ?")
            params.append(window.end)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return f"SELECT {cols} FROM {source}{clause} ORDER BY {cursor}", params

    def _query_for(self, table: str) -> str | None:
        query = self.settings.query
        return query.get(table) if isinstance(query, dict) else query

    def read(self, window: Window) -> Iterator[pa.RecordBatch]:
        sql, params = self.build_select(window)
        con = self._connect()
        try:
            try:
                cur = con.cursor()
                cur.execute(sql, params or None)
                reader = cur.fetch_record_batch()
            except Exception as e:
                raise self.classify(e) from None
            size = self.settings.batch_size
            try:
                for batch in reader:
                    for offset in range(0, batch.num_rows, size):
                        yield batch.slice(offset, size)
            except Exception as e:
                raise self.classify(e) from None
        finally:
            con.close()


_QUERY_FIELD = Field(None, description="A SELECT read instead of the mapping's table; a mapping table->SELECT "
                                       "when the shape reads several tables.")


class SnowflakeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str = Field(description="Account identifier (e.g. myorg-myaccount).")
    user: str = Field(description="User name.")
    password: SecretStr | None = Field(None, description="Password (use ${ENV}). Never shown.")
    private_key: SecretStr | None = Field(None, description="PKCS#8 private key for key-pair auth (use ${ENV}).")
    database: str = Field(description="Database.")
    db_schema: str = Field("PUBLIC", alias="schema", description="Schema.")
    warehouse: str | None = Field(None, description="Virtual warehouse.")
    role: str | None = Field(None, description="Role.")
    query: str | dict[str, str] | None = _QUERY_FIELD
    batch_size: int = Field(50_000, ge=1, description="Rows per Arrow record batch.")


class SnowflakeConnector:
    """Snowflake via adbc-driver-snowflake. Identifiers are quoted, so they are case-sensitive."""

    Settings: ClassVar[type[BaseModel]] = SnowflakeSettings

    def __init__(self, settings: SnowflakeSettings) -> None:
        self.settings = settings
        self._adbc = AdbcReader("snowflake", "adbc_driver_snowflake", settings, self.connect_kwargs)

    def check(self) -> None:
        self._adbc.check()

    def read(self, window: Window) -> Iterator[pa.RecordBatch]:
        return self._adbc.read(window)

    def build_select(self, window: Window) -> tuple[str, list[Any]]:
        return self._adbc.build_select(window)

    def connect_kwargs(self) -> dict[str, Any]:
        s = self.settings
        db = {
            "adbc.snowflake.sql.account": s.account,
            "username": s.user,
            "adbc.snowflake.sql.db": s.database,
            "adbc.snowflake.sql.schema": s.db_schema,
        }
        if s.warehouse:
            db["adbc.snowflake.sql.warehouse"] = s.warehouse
        if s.role:
            db["adbc.snowflake.sql.role"] = s.role
        if s.private_key is not None:
            db["adbc.snowflake.sql.auth_type"] = "auth_jwt"
            db["adbc.snowflake.sql.client_option.jwt_private_key_pkcs8_value"] = s.private_key.get_secret_value()
        elif s.password is not None:
            db["password"] = s.password.get_secret_value()
        else:
            raise ConnectorTerminalError("snowflake: set options.password or options.private_key (as ${ENV})")
        return {"db_kwargs": db}


class BigQuerySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str = Field(description="Google Cloud project id that runs the queries.")
    dataset: str | None = Field(None, description="Default dataset for unqualified table names.")
    credentials: SecretStr | None = Field(
        None, description="Service-account JSON (use ${ENV}); default: the machine's application credentials.")
    location: str | None = Field(None, description="Dataset location (e.g. EU).")
    query: str | dict[str, str] | None = _QUERY_FIELD
    batch_size: int = Field(50_000, ge=1, description="Rows per Arrow record batch.")


class BigQueryConnector:
    """BigQuery via adbc-driver-bigquery; identifiers are quoted with backticks."""

    Settings: ClassVar[type[BaseModel]] = BigQuerySettings

    def __init__(self, settings: BigQuerySettings) -> None:
        self.settings = settings
        self._adbc = AdbcReader("bigquery", "adbc_driver_bigquery", settings, self.connect_kwargs, self.quote)

    def check(self) -> None:
        self._adbc.check()

    def read(self, window: Window) -> Iterator[pa.RecordBatch]:
        return self._adbc.read(window)

    def build_select(self, window: Window) -> tuple[str, list[Any]]:
        return self._adbc.build_select(window)

    @staticmethod
    def quote(name: str) -> str:
        if not name or "\x00" in name or "\n" in name:
            raise ConnectorTerminalError(f"invalid identifier {name!r}: use a non-empty table or column name")
        return ".".join("`" + part.replace("\\", "\\\\").replace("`", "\\`") + "`" for part in name.split("."))

    def connect_kwargs(self) -> dict[str, Any]:
        s = self.settings
        db = {"adbc.bigquery.sql.project_id": s.project}
        if s.dataset:
            db["adbc.bigquery.sql.dataset_id"] = s.dataset
        if s.location:
            db["adbc.bigquery.sql.location"] = s.location
        if s.credentials is not None:
            db["adbc.bigquery.sql.auth_type"] = "adbc.bigquery.sql.auth_type.json_credential_string"
            db["adbc.bigquery.sql.auth_credentials"] = s.credentials.get_secret_value()
        else:
            db["adbc.bigquery.sql.auth_type"] = "adbc.bigquery.sql.auth_type.auth_bigquery"
        return {"db_kwargs": db}
