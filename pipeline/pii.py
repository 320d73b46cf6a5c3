"""PII scrubbing: e-mail addresses, phone numbers, card numbers and IP addresses become placeholders.

The same patterns run in DuckDB (RE2, during ingest) and in Python (`scrub_text`); card numbers are
replaced only when their digits pass the Luhn check, so order numbers and timestamps survive.
"""

from __future__ import annotations

import re

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

PLACEHOLDERS = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]", "ip": "[IP]"}
CARD_UDF = "alignloop_scrub_cards"

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



def scrub_sql(expr: str) -> str:
    """A DuckDB expression scrubbing the VARCHAR expression `expr` (needs the card UDF registered)."""
    inner = f"CASE WHEN regexp_matches({expr}, {sql_literal(CARD_CANDIDATE)}) THEN {CARD_UDF}({expr}) ELSE {expr} END"
    for pattern, placeholder in ((EMAIL, "[EMAIL]"), (IPV4, "[IP]"), (IPV6, "[IP]"), (PHONE, "[PHONE]")):
        inner = f"regexp_replace({inner}, {sql_literal(pattern)}, '{placeholder}', 'g')"
    return f"(CASE WHEN regexp_matches({expr}, {sql_literal(MAYBE_PII)}) THEN {inner} ELSE {expr} END)"


def register_card_udf(con) -> None:
    """Make the Luhn-checking card scrubber callable from DuckDB SQL on this connection."""
    try:
        con.create_function(CARD_UDF, scrub_cards, ["VARCHAR"], "VARCHAR", null_handling="special")
    except Exception as e:  # already registered on this connection
        if "already exists" not in str(e):
            raise
