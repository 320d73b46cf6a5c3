"""Tell someone when a scheduled run needs a person: it failed, or its candidate was gated out.

One JSON POST to `notify.webhook_url` (Slack-compatible: the line is in `text`). The URL holds a token,
so it is a secret: it is never logged, and a failed delivery is reported without it. A notification
never changes a run's outcome: delivery errors are logged as one warning line and swallowed.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

from alignloop import secrets
from alignloop.config import Settings

log = logging.getLogger(__name__)


def one_line(error: BaseException) -> str:
    """An error as the one line a person reads: its first line, secrets masked."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return secrets.redact(text)


def run_failed(settings: Settings, run_id: str | None, error: BaseException) -> bool:
    return send(settings, "failed", run_id, one_line(error))


def run_finished(settings: Settings, run_id: str, registered: dict[str, Any] | None) -> bool:
    """Notify when the registered candidate's gate verdict is not pass; nothing to say otherwise."""
    gate = (registered or {}).get("gate") or {}
    if not registered or gate.get("verdict") in (None, "pass"):
        return False
    failed = [line for line in gate.get("reasons", []) if "fail" in line.lower()] or gate.get("reasons", [])
    reason = f"version {registered.get('version')} gated out ({gate['verdict']})" + (f": {failed[0]}" if failed else "")
    return send(settings, "gated_out", run_id, reason)


def send(settings: Settings, outcome: str, run_id: str | None, reason: str) -> bool:
    """POST the notification if a webhook is set and `outcome` is one it is for; True when delivered."""
    notify = settings.notify
    if notify.webhook_url is None or outcome not in notify.on:
        return False
    target = settings.target or "alignloop"
    body = {"text": f"alignloop {target}: {outcome.replace('_', ' ')}: {reason}", "target": settings.target,
            "outcome": outcome, "reason": reason, "run_id": run_id}
    request = urllib.request.Request(notify.webhook_url.get_secret_value(), data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=notify.timeout_s) as response:
            response.read()
        return True
    except (urllib.error.URLError, OSError, ValueError) as e:
        # Never the URL: errors from urllib may quote it.
        detail = getattr(e, "code", None) or type(getattr(e, "reason", e)).__name__
        log.warning("notify: could not deliver the %s notification to notify.webhook_url (%s); the run's outcome "
                    "stands", outcome.replace("_", " "), detail)
        return False
