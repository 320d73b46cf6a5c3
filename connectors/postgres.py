"""Read feedback tables from PostgreSQL (any server libpq reaches), through DuckDB's postgres extension.

Why DuckDB's extension and not ADBC: with the window's bounds bound as parameters, ADBC's PostgreSQL
driver returned the whole window as ONE record batch: it does not stream a parameterised query, so its
memory grows with the window. This connector streams the window in `batch_size` batches with the
filter pushed down to the server, in bounded memory (BENCHMARKS.md "Connectors";
`python benchmarks/connector_streaming.py`). Secrets: the dsn and password are SecretStr; messages
name host, port, database and user, never the password. A json or jsonb column of a table, a view or an
options.query SELECT comes as JSON documents: a string lands without its quotes (see connectors/attached.py).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from alignloop.connectors.attached import AttachedReader, Target, classify_by_words
from alignloop.connectors.base import ConnectorTerminalError, Window

# libpq's words for "this will not work until something changes" vs "try again later".
_TERMINAL = {
    "password authentication failed": "check the user and password (options.dsn / options.password)",
    "does not exist": "check the user (role) and database in options.dsn",
    "permission denied": "grant this user CONNECT on the database and SELECT on the tables",
    "no pg_hba.conf entry": "the server does not accept this user from this host; ask its administrator",
    "no password supplied": "set the password in options.dsn or options.password (as ${ENV})",
    "ssl": "check the sslmode in options.dsn",
}
_TRANSIENT = {
    "connection refused": "is the server running on that host and port? it is retried",
    "could not translate host name": "check the host in options.dsn (or DNS); it is retried",
    "timeout expired": "the server did not answer in time; it is retried",
    "timed out": "the server did not answer in time; it is retried",
    "too many connections": "the server is busy; it is retried",
    "the database system is starting up": "the server is starting; it is retried",
    "server closed the connection": "the connection broke; it is retried",
    "no route to host": "the host cannot be reached; it is retried",
    "network is unreachable": "the host cannot be reached; it is retried",
}

# Every column typed json or jsonb (or a domain over them), of tables, views and foreign tables. DuckDB reads an
# unqualified table name in the schema public, whatever the search_path.
_JSON_COLUMNS = """
SELECT n.nspname::text, c.relname::text, a.attname::text, n.nspname = 'public'
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND (CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END) IN ('json'::regtype, 'jsonb'::regtype)
"""

# Whether a column of options.query's result is typed json or jsonb (or a domain over them): pg_typeof reads a
# column's type from a NULL too, so the query is planned, never run (connectors/attached.py).
_JSON_RESULT_TYPE = ("COALESCE((SELECT CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END "
                     "FROM pg_catalog.pg_type t WHERE t.oid = pg_typeof(__COLUMN__)) "
                     "IN ('json'::regtype, 'jsonb'::regtype), false)")


class PostgresSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dsn: SecretStr = Field(description="postgresql://user:${PW}@host:5432/database (or libpq key=value). Never shown.")
    password: SecretStr | None = Field(None, description="Password, when the dsn has none (use ${ENV}). Never shown.")
    query: str | dict[str, str] | None = Field(
        None, description="A SELECT (server dialect) read instead of the mapping's table; a mapping table->SELECT "
                          "when the shape reads several tables.")
    batch_size: int = Field(50_000, ge=1, description="Rows per Arrow record batch.")
    memory_limit: str = Field("512MB", description="DuckDB memory cap while reading a window.")
    connect_timeout: int = Field(10, ge=1, description="Seconds to wait for the server before a transient error.")


class PostgresConnector:
    """Reads a window of a PostgreSQL table (or of a query), unsorted."""

    Settings: ClassVar[type[BaseModel]] = PostgresSettings

    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings
        self._db = AttachedReader(settings, self.target, self.classify)

    def check(self) -> None:
        self._db.check()

    def read(self, window: Window) -> Iterator[pa.RecordBatch]:
        return self._db.read(window)

    def count(self, window: Window) -> int:
        """Rows in the window, counted where they live."""
        return self._db.count(window)

    def classify(self, message: str) -> tuple[bool, str] | None:
        return classify_by_words(message, _TERMINAL, _TRANSIENT)

    def target(self) -> Target:
        dsn = self.settings.dsn.get_secret_value().strip()
        password = self.settings.password.get_secret_value() if self.settings.password else None
        timeout = self.settings.connect_timeout
        if "://" in dsn:
            parts = urlsplit(dsn)
            if parts.scheme not in ("postgres", "postgresql"):
                raise ConnectorTerminalError(
                    f"postgres: options.dsn must start with postgresql:// (got {parts.scheme}://)")
            try:
                port = parts.port
            except ValueError:
                raise ConnectorTerminalError("postgres: options.dsn has a port that is not a number") from None
            user, host, db = unquote(parts.username or "") or "postgres", parts.hostname or "localhost", parts.path[1:]
            secrets = [dsn, *(p for p in (parts.password, unquote(parts.password or "")) if p)]
            netloc = parts.netloc
            if password is not None:
                netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{netloc.rsplit('@', 1)[-1]}"
            query = parts.query if "connect_timeout=" in parts.query else "&".join(
                q for q in (parts.query, f"connect_timeout={timeout}") if q)
            attach = urlunsplit((parts.scheme, netloc, parts.path, query, ""))
            describe = f"{host}:{port or 5432}/{db or user} as {user}"
        else:  # key=value form
            pairs = dict(item.split("=", 1) for item in dsn.split() if "=" in item)
            secrets = [dsn, pairs.get("password", "").strip("'")]
            attach = dsn
            if password is not None:
                attach += " password='" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"
            if "connect_timeout" not in pairs:
                attach += f" connect_timeout={timeout}"
            user = pairs.get("user", "postgres")
            describe = f"{pairs.get('host', 'localhost')}:{pairs.get('port', 5432)}/{pairs.get('dbname', user)} as {user}"
        if password:
            secrets.append(password)
        return Target("postgres", attach, describe, tuple(s for s in secrets if s) + (attach,), "postgres_query",
                      (_JSON_COLUMNS,), _JSON_RESULT_TYPE)
