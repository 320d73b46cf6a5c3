"""What tests that start `alignloop run` in fresh folders would otherwise build again each time: the tiny
base model and a migrated Prefect database. Each is built once per test session and then shared.

- The tiny model: a tiny-model config's `base_model.cache_dir` points at one folder for the session;
  alignloop builds into it atomically (a complete marker, a rename), as it does for concurrent runs.
- Prefect: a fresh PREFECT_HOME starts from a copy of a database Prefect's own command migrated
  (`prefect server database upgrade`), so the run's temporary server skips the migrations (about 8 s).

What the tests check is unchanged: the model and the database are the ones a fresh folder builds. A test
about building either (tests/unit/test_models.py, the wheel test) does not use these.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

_ROOT: Path | None = None


def set_root(root: Path) -> None:
    """Called once per session (tests/conftest.py) with a session temporary folder."""
    global _ROOT
    _ROOT = root


def _root() -> Path:
    if _ROOT is None:
        raise RuntimeError("tests.shared_builds: the session fixture did not run")
    return _ROOT


def model_cache() -> Path:
    """The session's base_model.cache_dir for tiny-model configs."""
    folder = _root() / "models"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def tiny_model() -> Path:
    """The tiny base model's folder in the session's model cache (built on first use)."""
    from alignloop.config import BaseModelSettings
    from alignloop.models import resolve_base_model

    return resolve_base_model(BaseModelSettings(tiny=True), model_cache())


def share_tiny_model(config: Path) -> Path:
    """Point a written tiny-model config (`base_model:` then `  tiny: true`) at the session's model cache."""
    text = config.read_text()
    block = "base_model:\n  tiny: true\n"
    if block not in text:
        raise AssertionError(f"{config}: no `{block!r}` block to add the shared cache_dir to")
    config.write_text(text.replace(block, f"{block}  cache_dir: {model_cache()}\n", 1))
    return config


def _migrated_database() -> Path:
    """prefect.db of a PREFECT_HOME that Prefect's own command migrated; built on first use."""
    home = _root() / "prefect-template"
    db = home / "prefect.db"
    if not db.is_file():   # each pytest process (each xdist worker) has its own session root and builds its own
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
        done = subprocess.run([sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"], env=env,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or not db.is_file():
            raise AssertionError(f"prefect server database upgrade failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return db


def seeded_prefect_home(home: Path) -> Path:
    """`home` as a PREFECT_HOME holding a migrated database (left as it is when it has one already)."""
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "prefect.db").exists():
        shutil.copyfile(_migrated_database(), home / "prefect.db")
    return home
