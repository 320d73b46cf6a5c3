"""PII scrubbing: e-mail addresses, phone numbers, card numbers and IP addresses become placeholders.

The same patterns run in DuckDB (RE2, during ingest) and in Python (`scrub_text`); card numbers are
replaced only when their digits pass the Luhn check, so order numbers and timestamps survive.
Placeholders go into text as a person reads it, never into its JSON encoding: in JSON, `\n` before
an address is two characters of text to a pattern, which would take the `n` as part of the address
and leave a lone backslash. Columns holding JSON (prompts as lists of turns) are decoded, their
strings scrubbed, and encoded again (`scrub_json`).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa

from alignloop.ingest.sqlbind import sql_literal

# RE2 and Python `re` (with re.ASCII) read these the same way.
EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
IPV4 = r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\b"
IPV6 = r"\b(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\b"
CARD_CANDIDATE = r"\b[0-9](?:[ -]?[0-9]){12,18}\b"
PHONE = r"(?:\+[0-9]{1,3}[ .-]?)?(?:\([0-9]{1,4}\)[ .-]?|\b[0-9]{2,4}[ .-])[0-9]{3,4}[ .-][0-9]{3,4}\b"
# Cheap first pass: text without '@', without a long digit run and without a dotted quad or an
# IPv6 group needs none of the patterns above.
MAYBE_PII = r"@|[0-9][0-9 ().-]{6,}[0-9]|[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:"
# In JSON text an ASCII character may also be written as an escape (`\u0040` is '@'): such text is
# looked at decoded too.
MAYBE_ESCAPED = r"\\u00[2-7][0-9A-Fa-f]"

PLACEHOLDERS = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]", "ip": "[IP]"}
CARD_UDF = "alignloop_scrub_cards"
JSON_UDF = "alignloop_scrub_json"

_CARD_RE = re.compile(CARD_CANDIDATE, re.ASCII)
_STEPS = [
    (re.compile(EMAIL, re.ASCII), PLACEHOLDERS["email"]),
    (re.compile(IPV4, re.ASCII), PLACEHOLDERS["ip"]),
    (re.compile(IPV6, re.ASCII), PLACEHOLDERS["ip"]),
    (re.compile(PHONE, re.ASCII), PLACEHOLDERS["phone"]),
]
_MAYBE_RE = re.compile(MAYBE_PII, re.ASCII)


def luhn_valid(digits: str) -> bool:
    """True when a string of digits passes the Luhn checksum (every payment card number does)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return len(digits) >= 13 and total % 10 == 0


def scrub_cards(text: str | None) -> str | None:
    """Replace Luhn-valid 13-19 digit runs (spaces or dashes allowed between digits) with [CARD]."""
    if text is None:
        return None

    def repl(m: re.Match[str]) -> str:
        digits = re.sub(r"[ -]", "", m.group(0))
        return PLACEHOLDERS["card"] if luhn_valid(digits) else m.group(0)

    return _CARD_RE.sub(repl, text)


def scrub_text(text: str | None) -> str | None:
    """The Python twin of `scrub_sql`: cards first (so their digits are not read as phones), then the rest."""
    if text is None or not _MAYBE_RE.search(text):
        return text
    text = scrub_cards(text)
    for pattern, placeholder in _STEPS:
        text = pattern.sub(placeholder, text)
    return text


def _scrubbed(value: Any) -> tuple[Any, bool]:
    """A decoded JSON value with every string in it scrubbed, and whether anything changed."""
    if isinstance(value, str):
        out = scrub_text(value)
        return out, out != value
    if isinstance(value, list):
        items = [_scrubbed(v) for v in value]
        return [v for v, _ in items], any(c for _, c in items)
    if isinstance(value, dict):
        pairs = {k: _scrubbed(v) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(c for _, c in pairs.values())
    return value, False


def scrub_json(text: str | None) -> str | None:
    """Scrub JSON-encoded text (an object or a list) in its decoded strings; the text comes back as it was
    unless a placeholder went in. Text that is not a JSON object or list is scrubbed as plain text."""
    if text is None:
        return None
    if text.lstrip()[:1] in ("[", "{"):
        try:
            value = json.loads(text)
        except ValueError:
            return scrub_text(text)
        value, changed = _scrubbed(value)
        if not changed:
            return text
        out = json.dumps(value, ensure_ascii=False)
        try:
            out.encode()
        except UnicodeEncodeError:  # a lone surrogate written as an escape stays an escape
            out = json.dumps(value)
        return out
    return scrub_text(text)


def _scrub_json_arrow(texts: pa.Array) -> pa.Array:
    return pa.array([scrub_json(t) for t in texts.to_pylist()], pa.string())


def scrub_sql(expr: str) -> str:
    """A DuckDB expression scrubbing the VARCHAR expression `expr` (needs the card UDF registered)."""
    inner = f"CASE WHEN regexp_matches({expr}, {sql_literal(CARD_CANDIDATE)}) THEN {CARD_UDF}({expr}) ELSE {expr} END"
    for pattern, placeholder in ((EMAIL, "[EMAIL]"), (IPV4, "[IP]"), (IPV6, "[IP]"), (PHONE, "[PHONE]")):
        inner = f"regexp_replace({inner}, {sql_literal(pattern)}, '{placeholder}', 'g')"
    return f"(CASE WHEN regexp_matches({expr}, {sql_literal(MAYBE_PII)}) THEN {inner} ELSE {expr} END)"


def scrub_json_sql(expr: str) -> str:
    """A DuckDB expression scrubbing the strings inside the JSON-encoded VARCHAR expression `expr`
    (needs the scrubbers registered: register_scrub_udfs)."""
    return f"{JSON_UDF}({expr})"


def register_scrub_udfs(con) -> None:
    """Make the Luhn-checking card scrubber and the JSON scrubber callable from DuckDB SQL on this connection."""
    for name, fn, kind in ((CARD_UDF, scrub_cards, "native"), (JSON_UDF, _scrub_json_arrow, "arrow")):
        try:
            con.create_function(name, fn, ["VARCHAR"], "VARCHAR", type=kind, null_handling="special")
        except Exception as e:  # already registered on this connection
            if "already exists" not in str(e):
                raise
