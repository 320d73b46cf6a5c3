"""`--kind http`: an HTTP/JSON API read page by page with a next-page token, on the standard library alone."""

CONNECTOR = r'''"""Read feedback rows from $name: an HTTP/JSON API, page by page.

Written by `alignloop connectors new $name --kind http`. It assumes the API answers

    GET {base_url}/{table}?since=<ISO time>&until=<ISO time>&limit=<page_size>[&cursor=<token>]
    Authorization: Bearer <token>

with `{"items": [{...}, ...], "next": "<token>" or null}`, and works as written against such an API.
For yours, change `_page_query` (the parameter names; an API that numbers pages sends `page=n` and
stops at an empty page) and `_page_items` (where the items and the next token are), and keep the
rest: the window's bounds sent as `since`/`until` and enforced again here (half-open, [start, end)),
timeouts and 429/5xx retried and then raised as ConnectorTransientError, 401/403/404 raised at once as
ConnectorTerminalError with no token, URL credentials or response body in the message, and
`batch_size` rows per Arrow batch. It needs no package beyond alignloop.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import pyarrow as pa
from $base import ConnectorError, ConnectorTerminalError, ConnectorTransientError, Window
from pydantic import BaseModel, ConfigDict, Field, SecretStr


class ${cls}Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(description="The API's root URL, e.g. https://api.example.com/v1; a table is a path below it.")
    token: SecretStr | None = Field(None, description="Bearer token; write it as $${ENV_NAME} in the config.")
    page_size: int = Field(500, ge=1, description="Items asked for per request.")
    batch_size: int = Field(10_000, ge=1, description="Rows per Arrow record batch.")
    timestamp_fields: tuple[str, ...] = Field(
        (), description="Fields holding ISO-8601 times, handed over as timestamps (the cursor field always is).")
    timeout_s: float = Field(30.0, gt=0, description="Seconds to wait for one response.")
    retries: int = Field(3, ge=0, description="Retries of a request that a retry can fix (timeout, 429, 5xx).")
    backoff_s: float = Field(1.0, ge=0, description="Wait before the first retry, doubled for each one after it.")


def _parse_time(value: Any) -> datetime:
    """A naive UTC datetime from an ISO-8601 string (a trailing Z accepted) or epoch seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).replace(tzinfo=None)
    parsed = datetime.fromisoformat(str(value).strip())
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _iso(value: datetime) -> str:
    return (value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value).isoformat() + "Z"


class $cls:
    """Reads a window of one API collection (the window's table), page by page."""

    Settings: ClassVar[type[BaseModel]] = ${cls}Settings

    def __init__(self, settings: ${cls}Settings) -> None:
        self.settings = settings

    # ------------------------------------------------------------------ the API's conventions
    def _page_query(self, window: Window, token: str | None) -> dict[str, str]:
        query = {"limit": str(self.settings.page_size)}
        if window.cursor_column and window.start is not None:
            query["since"] = _iso(window.start)
        if window.cursor_column and window.end is not None:
            query["until"] = _iso(window.end)
        if token is not None:
            query["cursor"] = token
        return query

    def _page_items(self, page: Any, where: str) -> tuple[list[dict[str, Any]], str | None]:
        items = page.get("items") if isinstance(page, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ConnectorTerminalError(f"$name: {where} answered JSON without an `items` list of objects; "
                                         "check options.base_url")
        token = page.get("next")
        return items, None if token in (None, "") else str(token)

    # ------------------------------------------------------------------ requests
    def _where(self, url: str) -> str:
        """The URL as shown in messages: host and path, never credentials or query."""
        parts = urllib.parse.urlsplit(url)
        return f"{parts.hostname or '?'}{':' + str(parts.port) if parts.port else ''}{parts.path}"

    def _http_error(self, error: urllib.error.HTTPError, url: str, table: str | None) -> ConnectorError:
        status, where = error.code, self._where(url)
        error.close()
        if status in (401, 403):
            return ConnectorTerminalError(f"$name: {where} refused the request (HTTP {status}); check options.token "
                                          "and what it may read")
        if status == 404:
            what = f"no table {table!r} at" if table else "nothing at"
            return ConnectorTerminalError(f"$name: {what} {where} (HTTP 404); check options.base_url and the table "
                                          "name in the source's mapping")
        if status in (408, 429) or status >= 500:
            return ConnectorTransientError(f"$name: {where} answered HTTP {status}; retried, then left for the next run")
        return ConnectorTerminalError(f"$name: {where} answered HTTP {status}; check the source's options")

    def _get(self, url: str, table: str | None = None) -> Any:
        headers = {"Accept": "application/json"}
        if self.settings.token is not None:
            headers["Authorization"] = f"Bearer {self.settings.token.get_secret_value()}"
        request = urllib.request.Request(url, headers=headers)
        for attempt in range(self.settings.retries + 1):
            try:
                with urllib.request.urlopen(request, timeout=self.settings.timeout_s) as response:
                    body = response.read()
                break
            except urllib.error.HTTPError as e:
                error = self._http_error(e, url, table)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                reason = type(getattr(e, "reason", e)).__name__
                error = ConnectorTransientError(f"$name: {self._where(url)} is unreachable ({reason}); "
                                                "check options.base_url")
            if not error.transient or attempt == self.settings.retries:
                raise error
            time.sleep(self.settings.backoff_s * 2 ** attempt)
        try:
            return json.loads(body)
        except ValueError:
            raise ConnectorTerminalError(f"$name: {self._where(url)} did not answer JSON; check options.base_url") from None

    def _url(self, table: str, query: dict[str, str]) -> str:
        path = "/".join(urllib.parse.quote(part, safe="") for part in table.split("/"))
        return f"{self.settings.base_url.rstrip('/')}/{path}?{urllib.parse.urlencode(query)}"

    # ------------------------------------------------------------------ the contract
    def check(self) -> None:
        """One request that needs the token (here the API's root): bad credentials fail before any read."""
        self._get(self.settings.base_url)

    def _items(self, window: Window) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            url = self._url(window.table, self._page_query(window, token))
            items, token = self._page_items(self._get(url, window.table), self._where(url))
            yield from items
            if token is None or not items:
                return

    def read(self, window: Window) -> Iterator[pa.RecordBatch]:
        rows: list[dict[str, Any]] = []
        for item in self._items(window):
            if window.cursor_column and not self._in_window(item, window):
                continue  # the API's own filter may be looser than half-open [start, end)
            rows.append(item)
            if len(rows) == self.settings.batch_size:
                yield self._batch(rows, window)
                rows = []
        if rows:
            yield self._batch(rows, window)

    def _in_window(self, item: dict[str, Any], window: Window) -> bool:
        value = item.get(window.cursor_column)
        if value is None:  # no time: only a window without bounds holds it
            return window.start is None and window.end is None
        ts = self._time(value, window.cursor_column, window.table)
        return (window.start is None or ts >= _naive(window.start)) and (window.end is None or ts < _naive(window.end))

    def _time(self, value: Any, name: str, table: str) -> datetime:
        try:
            return _parse_time(value)
        except (TypeError, ValueError, OverflowError):
            raise ConnectorTerminalError(f"$name: {table}: field {name!r} holds {str(value)[:40]!r}, not an ISO-8601 "
                                         "time; fix the data, or leave the field out of options.timestamp_fields") from None

    def _batch(self, rows: list[dict[str, Any]], window: Window) -> pa.RecordBatch:
        names = list(window.columns) or list(dict.fromkeys(k for row in rows for k in row))
        missing = [n for n in (*names, window.cursor_column) if n and all(n not in row for row in rows)]
        if missing:
            have = ", ".join(dict.fromkeys(k for row in rows for k in row))
            raise ConnectorTerminalError(f"$name: the items of {window.table} have no field {missing[0]!r} (they have "
                                         f"{have}); check the column names in the source's mapping")
        times = {*self.settings.timestamp_fields, window.cursor_column}
        arrays = []
        for n in names:
            values = [row.get(n) for row in rows]
            if n in times:
                arrays.append(pa.array([None if v is None else self._time(v, n, window.table) for v in values],
                                       pa.timestamp("us")))
                continue
            try:
                arrays.append(pa.array(values))
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                # Items disagree on a field's type (text here, an object there): it goes over as JSON text.
                arrays.append(pa.array([v if v is None or isinstance(v, str) else json.dumps(v) for v in values]))
        return pa.RecordBatch.from_arrays(arrays, names=names)


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
'''

PROVIDER = r'''"""Contract provider for `$name`: the contract rows served by a stand-in of the API on 127.0.0.1.

The promises it is checked against are alignloop.connectors.testing's. The stand-in answers the way
the connector assumes the API does (bearer token, `since`/`until`/`limit`/`cursor`, `items` and
`next`), two items a page so every read follows the next-page token. Change it with the connector;
better still, seed a test instance of the real API and point the options at it.
"""

from __future__ import annotations

import json
import secrets
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from alignloop.connectors.testing import ContractRow, ContractSource

TABLE = "contract_rows"


def _handler(rows: list[ContractRow], token: str) -> type[BaseHTTPRequestHandler]:
    items = sorted(({"id": r.id, "ts": r.ts.isoformat() + "Z", "body": r.body} for r in rows),
                   key=lambda item: (item["ts"], item["id"]))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows what matters
            pass

        def _send(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.headers.get("Authorization") != f"Bearer {token}":
                return self._send(401, {"error": "invalid token"})
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            if url.path in ("", "/"):
                return self._send(200, {"tables": [TABLE]})
            if url.path != f"/{TABLE}":
                return self._send(404, {"error": "no such collection"})
            since, until = (datetime.fromisoformat(query[k]) if k in query else None
                            for k in ("since", "until"))
            chosen = [i for i in items
                      if (since is None or datetime.fromisoformat(i["ts"]) >= since)
                      and (until is None or datetime.fromisoformat(i["ts"]) < until)]
            start, limit = int(query.get("cursor", 0)), min(int(query.get("limit", 2)), 2)
            more = start + limit < len(chosen)
            return self._send(200, {"items": chosen[start:start + limit], "next": str(start + limit) if more else None})

    return Handler


@contextmanager
def seeded_source(tmp_path: Path, rows: list[ContractRow]) -> Iterator[ContractSource]:
    token = secrets.token_hex(16)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rows, token))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{server.server_port}"
    wrong = secrets.token_hex(16)
    try:
        yield ContractSource(
            options={"base_url": base_url, "token": token, "retries": 0, "timestamp_fields": ["ts"]},
            table=TABLE,
            bad_options={"base_url": base_url, "token": wrong},
            secret=wrong,
            stand_in="a loopback http.server that answers as the API is assumed to",
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
'''
