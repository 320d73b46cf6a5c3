"""Whether a scheduled run trains: enough new feedback since the latest registered version, or forced.

The decision reads counts only (the registry's latest version, the store's rows after its snapshot),
so a night with nothing new ends in seconds, before any snapshot is measured or run folder written.
"""

from __future__ import annotations

from dataclasses import dataclass

from alignloop.config import Settings
from alignloop.errors import TerminalError
from alignloop.ingest.store import FeedbackStore


@dataclass(frozen=True)
class TriggerDecision:
    """Whether to train, and the reason in one line (shown in the CLI, the flow's state and its artifact)."""

    train: bool
    reason: str
    new_rows: int | None = None  # rows since the latest version's snapshot, when that was counted
    since_version: int | None = None


def decide_retrain(settings: Settings, *, force: bool = False) -> TriggerDecision:
    """Train when forced, when nothing is registered yet, when the settings that shape a model changed
    since the latest registered version, or when schedule.min_new_feedback rows arrived since its snapshot."""
    from alignloop.registry import describe

    if force:
        return TriggerDecision(True, "forced (--force): trains whatever arrived")
    target = settings.model_name
    complete = [v for v in describe(settings.tracking_uri, target) if v["complete"]]
    if not complete:
        return TriggerDecision(True, f"no version of {target!r} is registered yet")
    latest = complete[-1]
    number, tags = latest["version"], latest["tags"]
    if tags.get("alignloop.config_hash") != settings.config_hash():
        return TriggerDecision(True, f"the settings that shape a model changed since version {number} (config hash "
                                     f"{tags.get('alignloop.config_hash')} -> {settings.config_hash()})", None, number)
    snapshot_id = tags.get("alignloop.snapshot_id", "")
    with FeedbackStore(settings.store_path) as store:
        try:
            new_rows = store.rows_since(store.get_snapshot(snapshot_id))
        except TerminalError:
            return TriggerDecision(True, f"version {number}'s snapshot {snapshot_id[:12]} is not in the store "
                                         f"{settings.store_path}; counting from it is impossible", None, number)
    minimum = settings.schedule.min_new_feedback
    if new_rows >= minimum:
        return TriggerDecision(True, f"{new_rows} new feedback rows since version {number}'s snapshot "
                                     f"{snapshot_id[:12]} (schedule.min_new_feedback {minimum})", new_rows, number)
    return TriggerDecision(False, f"{new_rows} new feedback rows since version {number}'s snapshot "
                                  f"{snapshot_id[:12]}, fewer than schedule.min_new_feedback ({minimum}); nothing to "
                                  "train (--force trains anyway)", new_rows, number)
