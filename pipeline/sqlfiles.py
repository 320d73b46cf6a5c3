"""Access to the DuckDB SQL files in sql/ (one statement purpose per file, with a header)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


@cache
def sql_text(name: str) -> str:
    """The text of sql/<name> (e.g. 'shapes/events_pairs.sql')."""
    return (SQL_DIR / name).read_text()
