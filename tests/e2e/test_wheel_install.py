"""The built wheel is a working alignloop: installed into a clean virtual environment, run from another
folder (so the source tree is not on the path), `alignloop demo --tiny` ingests, trains and registers."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], cwd: Path, timeout: int = 1800) -> str:
    # A fresh Prefect home beside the run; its ephemeral API server may start slowly on a busy machine.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": "", "PREFECT_HOME": str(cwd / "prefect-home"),
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_built_wheel_installs_and_runs_the_tiny_demo_from_another_folder(tmp_path):
    dist = tmp_path / "dist"
    # sdist first, then the wheel from the sdist in isolation: the sdist must carry sql/ too, and no
    # stale build/ folder of the checkout can leak into the wheel.
    _run([sys.executable, "-m", "build", "--outdir", str(dist), str(REPO)], cwd=tmp_path)
    (wheel,) = dist.glob("alignloop-*.whl")
    # Every SQL file of the checkout ships (a new sql/ subfolder must be listed in pyproject's packages).
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.removeprefix("alignloop/sql/") for n in names if n.startswith("alignloop/sql/")}
    assert {str(p.relative_to(REPO / "sql")) for p in (REPO / "sql").rglob("*.sql")} <= shipped
    # One import root: nothing but `alignloop` (and the wheel's metadata folder) at the top of the wheel,
    # so no generic name (pipeline, flows, connectors, benchmarks, tests) lands in site-packages.
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"alignloop"}, sorted(top)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    # torch==2.13.0 is pinned by the package itself: the CPU wheel from the local mirror/cache.
    _run([str(python), "-m", "pip", "install", "--quiet", "--no-compile", str(wheel)], cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = "import alignloop.sqlfiles as s; print(s.sql_root().joinpath('store_schema.sql'))"
    where = _run([str(python), "-c", probe], cwd=elsewhere).strip()
    assert where.startswith(str(venv)), f"SQL read from {where}, not from the installed package"
    out = _run([str(venv / "bin" / "alignloop"), "demo", "--tiny", "--workdir", "demo"], cwd=elsewhere)
    assert "newest" in out, out[-2000:]
    assert (elsewhere / "demo" / "feedback.duckdb").is_file()
