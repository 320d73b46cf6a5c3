"""Read feedback tables from MySQL or MariaDB through DuckDB's mysql extension (no ADBC driver exists
for them on PyPI; the extension streams, with the window's filter and order pushed to the server).

The dsn is `mysql://user:${PW}@host:3306/database` (SecretStr, never shown); see connectors/attached.py.
A JSON column of a table comes as JSON documents (a string lands without its quotes): MySQL's by its
type, MariaDB's by its json_valid check (a MariaDB view does not carry it: unwrap there, or read the table).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from alignloop.connectors.attached import AttachedReader, Target, classify_by_words
from alignloop.connectors.base import ConnectorTerminalError, Window

_TERMINAL = {
    "access denied": "check the user and password (options.dsn / options.password) and the user's grants",
    "unknown database": "check the database in options.dsn",
    "command denied": "grant this user SELECT on the tables",
}
_TRANSIENT = {
    "can't connect": "is the server running on that host and port? it is retried",
    "connection refused": "is the server running on that host and port? it is retried",
    "unknown mysql server host": "check the host in options.dsn (or DNS); it is retried",
    "lost connection": "the connection broke; it is retried",
    "gone away": "the connection broke; it is retried",
    "too many connections": "the server is busy; it is retried",
    "timed out": "the server did not answer in time; it is retried",
}

# Every column typed JSON. MySQL names the type; MariaDB stores JSON as LONGTEXT with the check
# json_valid(`column`), which only its CHECK_CONSTRAINTS (with a TABLE_NAME, which MySQL's lacks) tell.
_MYSQL_JSON_COLUMNS = """
SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, TABLE_SCHEMA = DATABASE()
FROM information_schema.COLUMNS WHERE DATA_TYPE = 'json'
"""
_MARIADB_JSON_COLUMNS = _MYSQL_JSON_COLUMNS + """
UNION
SELECT CONSTRAINT_SCHEMA, TABLE_NAME, SUBSTRING(CHECK_CLAUSE, 13, CHAR_LENGTH(CHECK_CLAUSE) - 14),
       CONSTRAINT_SCHEMA = DATABASE()
FROM information_schema.CHECK_CONSTRAINTS WHERE CHECK_CLAUSE LIKE 'json\\_valid(`%`)'
"""


class MySQLSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dsn: SecretStr = Field(description="mysql://user:${PW}@host:3306/database (MariaDB too). Never shown.")
    password: SecretStr | None = Field(None, description="Password, when the dsn has none (use ${ENV}). Never shown.")
    query: str | dict[str, str] | None = Field(
        None, description="A SELECT (server dialect) read instead of the mapping's table; a mapping table->SELECT "
                          "when the shape reads several tables.")
    batch_size: int = Field(50_000, ge=1, description="Rows per Arrow record batch.")
    memory_limit: str = Field("512MB", description="DuckDB memory cap while reading a window.")


class MySQLConnector:
    """Reads a window of a MySQL/MariaDB table (or of a query), unsorted."""

    Settings: ClassVar[type[BaseModel]] = MySQLSettings

    def __init__(self, settings: MySQLSettings) -> None:
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
        parts = urlsplit(dsn)
        if parts.scheme not in ("mysql", "mariadb"):
            raise ConnectorTerminalError("mysql: options.dsn must look like mysql://user:${PW}@host:3306/database")
        try:
            port = parts.port or 3306
        except ValueError:
            raise ConnectorTerminalError("mysql: options.dsn has a port that is not a number") from None
        user = unquote(parts.username or "") or "root"
        password = self.settings.password.get_secret_value() if self.settings.password else None
        secrets = [dsn, *(p for p in (parts.password, unquote(parts.password or ""), password) if p)]
        netloc = parts.netloc
        if password is not None:
            netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{netloc.rsplit('@', 1)[-1]}"
        attach = urlunsplit(("mysql", netloc, parts.path, parts.query, ""))
        describe = f"{parts.hostname or 'localhost'}:{port}/{parts.path[1:]} as {user}"
        return Target("mysql", attach, describe, (*secrets, attach), "mysql_query", (_MARIADB_JSON_COLUMNS,
                                                                                     _MYSQL_JSON_COLUMNS))
