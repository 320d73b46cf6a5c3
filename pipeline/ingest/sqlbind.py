"""Bind only the named parameters a statement uses (DuckDB refuses extra ones); quote what cannot be bound."""

from __future__ import annotations

import re
from typing import Any

_NAMED = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def bind(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    used = set(_NAMED.findall(sql))
    return {k: v for k, v in params.items() if k in used}


def sql_literal(text: str) -> str:
    """A SQL string literal, for the few statements that take no parameters (views, patterns inlined)."""
    return "'" + text.replace("'", "''") + "'"
