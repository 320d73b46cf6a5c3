"""Checkpoints and resume: a killed run continues from its last checkpoint, and only with the same
data and settings (a fingerprint of both is written beside the checkpoints)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from alignloop.errors import ConfigError, DataError

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "alignloop-resume.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def last_checkpoint(trainer_dir: Path) -> Path | None:
    """The newest complete checkpoint folder (highest step holding trainer_state.json), if any."""
    if not trainer_dir.is_dir():
        return None
    found = []
    for child in trainer_dir.iterdir():
        m = _CHECKPOINT.match(child.name)
        if m and (child / "trainer_state.json").is_file():
            found.append((int(m.group(1)), child))
    return max(found)[1] if found else None


def resume_point(trainer_dir: Path, fingerprint: dict[str, Any], resume: bool) -> str | None:
    """The checkpoint to resume from, after checking it was made from the same data and settings.

    Writes the fingerprint when starting fresh. Raises DataError (changed data) or ConfigError
    (changed settings) with one line saying how to proceed.
    """
    checkpoint = last_checkpoint(trainer_dir) if resume else None
    marker = trainer_dir / FINGERPRINT_FILE
    if checkpoint is None:
        trainer_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(fingerprint, indent=2, sort_keys=True) + "\n")
        return None
    try:
        saved = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        raise ConfigError(f"resume refused: {checkpoint} has no readable {FINGERPRINT_FILE}, so its data and settings "
                          "are unknown; delete the checkpoints or set training.resume: false to start over") from None
    if saved.get("data") != fingerprint["data"]:
        raise DataError(f"resume refused: the training rows differ from those {checkpoint.name} was trained on "
                        "(snapshot, split or max_length changed); plan a new run (`alignloop plan`) or set "
                        "training.resume: false to start this one over")
    if saved.get("config") != fingerprint["config"]:
        changed = sorted(k for k in set(saved.get("settings", {})) | set(fingerprint.get("settings", {}))
                         if saved.get("settings", {}).get(k) != fingerprint.get("settings", {}).get(k))
        raise ConfigError(f"resume refused: the training settings differ from those {checkpoint.name} was made with "
                          f"(changed: {', '.join(changed) or 'the base model'}); restore them, or set "
                          "training.resume: false to start this run over")
    log.info("resuming from %s", checkpoint)
    return str(checkpoint)
