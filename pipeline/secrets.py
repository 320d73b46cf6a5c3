"""Keep secrets out of everything alignloop shows or writes: logs, warnings, errors, tables, files.

Two nets. Values known to be secret (SecretStr settings, passwords inside URLs of the loaded config)
are remembered and replaced wherever they appear. Shapes that carry secrets whatever their value
(`scheme://user:PASSWORD@host`, `?token=...`, `password=...`) are masked even when nobody told us.
`install()` puts both nets over Python logging and warnings for the whole process.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

MASK = "***"

# Setting names whose values are secret (a `dsn` embeds a password).
_SECRET_NAME = re.compile(
    r"(pass(word|wd)?$|(^|[_-])pw$|secret|token$|credential|private_key|api_?key|access_key$|^dsn$|^auth|sas$|signature)",
    re.IGNORECASE,
)
# scheme://user:password@host  ->  scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@'\"]*:)(?P<pw>[^@\s/'\"]+)(?=@)")
# ?token=..., &X-Amz-Signature=..., password=... (libpq key=value strings, query strings, dict reprs)
_KEY_VALUE = re.compile(
    r"(?P<head>(?<![A-Za-z0-9_])(?:[A-Za-z0-9_\-]*(?:password|passwd|secret|token|signature|credential|"
    r"api_?key|access_?key|private_?key|sig|pwd))\s*(?:=|:\s*|'\s*:\s*'|\"\s*:\s*\")['\"]?)"
    r"(?P<value>[^\s&'\",;}]+)",
    re.IGNORECASE,
)

_known: set[str] = set()
_lock = threading.Lock()


def is_secret_name(name: str) -> bool:
    """Whether a setting called `name` holds a secret (password, token, key, dsn ...)."""
    return bool(_SECRET_NAME.search(name))


def url_password(url: str) -> str | None:
    """The password inside a URL's user part, if any."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def remember(*values: Any) -> None:
    """Treat these values as secret from now on (SecretStr, str; URLs give their password too)."""
    with _lock:
        for value in values:
            if value is None:
                continue
            text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
            if len(text) < 3:  # masking "a" or "12" everywhere would garble every line, and guards nothing
                continue
            pw = url_password(text)
            # A URL's password is its secret; the rest (host, database) stays readable in messages.
            if pw:
                _known.update(v for v in (pw, unquote(pw)) if len(v) >= 3)
            else:
                _known.add(text)


def forget_all() -> None:
    """Drop every remembered secret (tests)."""
    with _lock:
        _known.clear()


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """`text` with every remembered secret, every value in `extra` and every secret-shaped part masked."""
    if not text:
        return text
    with _lock:
        values = sorted({*_known, *(e for e in extra if e and len(e) >= 3)}, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    return _KEY_VALUE.sub(lambda m: m.group("head") + MASK, text)


def redact_url(url: str | None) -> str:
    """A URL as it may be shown: the password and token-like query values masked."""
    return "" if url is None else redact(url)


class _RedactingRecordFactory:
    """Builds every LogRecord with its message (and traceback text) already redacted."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is the logging module's to report, not ours
            return record
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record


_factory_installed = False


def install() -> None:
    """Redact every log record and every warning this process emits from now on (idempotent).

    Log records are redacted where they are made, so every handler (Prefect's API logger included)
    sees the masked text; warnings are redacted by wrapping whatever `warnings.showwarning` is now.
    """
    global _factory_installed
    with _lock:
        if not _factory_installed:
            logging.setLogRecordFactory(_RedactingRecordFactory(logging.getLogRecordFactory()))
            _factory_installed = True
    shown = warnings.showwarning
    if getattr(shown, "_alignloop_redacting", False):
        return

    def showwarning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                    line: str | None = None) -> None:
        text = redact(str(message))
        if text != str(message):
            message = text  # formatwarning() only needs str(message)
        shown(message, category, filename, lineno, file, line)

    showwarning._alignloop_redacting = True  # type: ignore[attr-defined]
    warnings.showwarning = showwarning
