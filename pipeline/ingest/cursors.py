"""Incremental cursors: what kind of column a source reads by, and where the next read starts.

Positions are stored as text with their kind. Timestamps are always UTC: a TIMESTAMPTZ column is
read with a time-zone-aware bound, so a source session in another zone cannot shift the window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from alignloop.errors import ConfigError

TIMESTAMP, TIMESTAMPTZ, TEXT, INTEGER = "timestamp", "timestamptz", "text", "integer"
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$")


@dataclass(frozen=True)
class CursorPosition:
    value: str
    kind: str

    def window_start(self, lookback: timedelta) -> Any:
        """The lower bound (inclusive) of the next read, in the type the source column compares with."""
        if self.kind == INTEGER:
            # Ids have no clock: re-read from the last id itself; rows below it are assumed committed.
            return int(self.value)
        if self.kind == TEXT:
            start = parse_iso(self.value) - lookback
            sep = "T" if "T" in self.value else " "
            # A bare prefix sorts at or before every spelling of the same instant (with a zone suffix or not).
            return start.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
        start = datetime.fromisoformat(self.value) - lookback
        return start.replace(tzinfo=UTC) if self.kind == TIMESTAMPTZ else start


def parse_iso(text: str) -> datetime:
    """An ISO-8601 text timestamp as naive UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def cursor_kind(arrow_type: pa.DataType, sample: Any, setting: str) -> str:
    """The kind of cursor an Arrow column type gives; anything else is a ConfigError naming `setting`."""
    if pa.types.is_timestamp(arrow_type):
        return TIMESTAMPTZ if arrow_type.tz else TIMESTAMP
    if pa.types.is_date(arrow_type):
        return TIMESTAMP
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        # an increasing number (an id, or epoch seconds, fractional as Chatbot-Arena-style logs write them):
        # counted in whole numbers, the window starting at the last one read
        return INTEGER
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        if sample is not None and not _ISO.match(str(sample).strip()):
            raise ConfigError(
                f"{setting}: the cursor column holds text that is not an ISO-8601 timestamp ({str(sample)[:40]!r}); "
                "text cursors must sort in time order: point it at a timestamp, ISO text or increasing number column"
            )
        return TEXT
    raise ConfigError(
        f"{setting}: a cursor column of type {arrow_type} cannot order rows; point it at a timestamp, "
        "ISO-8601 text or increasing number column"
    )
