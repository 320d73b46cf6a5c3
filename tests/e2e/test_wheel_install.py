"""The built wheel is a working alignloop: installed into a new virtual environment that holds only what the
wheel declares it needs, run from another folder (so the source tree is not on the path), `alignloop demo
--tiny` ingests, trains and registers.

The declared dependencies are not downloaded and unpacked again (about two minutes): the new environment
reaches exactly the distributions the wheel's Requires-Dist names, and theirs, transitively, through a
folder of links into this test's own environment. A module the package imports but does not declare (a
test-only or dev-only package) is not there, so the demo fails on it as it would after `pip install`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _declared(wheel: Path) -> list[Requirement]:
    """The wheel's Requires-Dist outside any extra (what a plain `pip install` of it pulls)."""
    with zipfile.ZipFile(wheel) as z:
        (meta,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        lines = z.read(meta).decode().splitlines()
    reqs = [Requirement(line.split(":", 1)[1].strip()) for line in lines if line.startswith("Requires-Dist:")]
    return [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]


def _closure(requirements: list[Requirement]) -> list[metadata.Distribution]:
    """The installed distributions `requirements` pull, transitively, with the extras they ask for."""
    found: dict[str, metadata.Distribution] = {}
    todo = [(r, "") for r in requirements]
    seen: set[tuple[str, str]] = set()
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        for wanted in ("", *sorted(req.extras)):
            if (name, wanted) in seen:
                continue
            seen.add((name, wanted))
            dist = found.setdefault(name, metadata.distribution(req.name))
            assert req.specifier.contains(dist.version, prereleases=True), f"{req}: {dist.version} is installed here"
            todo.extend((Requirement(r), wanted) for r in dist.requires or [])
    return list(found.values())


def _link_declared(wheel: Path, venv: Path) -> int:
    """Give `venv` the wheel's declared dependencies: a site folder of links to each one's top-level files
    here (its packages, modules, .pth files and dist-info), added by a .pth line. Returns how many."""
    dists = _closure(_declared(wheel))
    deps = venv / "declared-deps"
    deps.mkdir()
    here = Path(sysconfig.get_paths()["purelib"]).resolve()
    for dist in dists:
        root = Path(dist.locate_file("")).resolve()
        tops = {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            target, link = root / top, deps / top
            if target.exists() and not link.exists():
                link.symlink_to(target)
        assert root == here, f"{dist.metadata['Name']} is installed outside this environment ({root})"
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    (site / "declared-deps.pth").write_text(f"import site; site.addsitedir({str(deps)!r})\n")
    return len(dists)


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
    # The venv's bundled setuptools would shadow the one a dependency (torch) declares; pip install would upgrade it.
    _run([str(python), "-m", "pip", "uninstall", "--quiet", "--yes", "setuptools"], cwd=tmp_path)
    assert _link_declared(wheel, venv) > 20
    _run([str(python), "-m", "pip", "install", "--quiet", "--no-compile", "--no-deps", str(wheel)], cwd=tmp_path)
    # Every declared requirement is met by what the new environment holds (the versions included).
    _run([str(python), "-m", "pip", "check"], cwd=tmp_path)
    # A dev-only package is not importable there: the environment is not this one.
    missing = subprocess.run([str(python), "-c", "import hypothesis"], cwd=tmp_path, capture_output=True, text=True)
    assert missing.returncode != 0 and "No module named 'hypothesis'" in missing.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = "import alignloop.sqlfiles as s; print(s.sql_root().joinpath('store_schema.sql'))"
    where = _run([str(python), "-c", probe], cwd=elsewhere).strip()
    assert where.startswith(str(venv)), f"SQL read from {where}, not from the installed package"
    out = _run([str(venv / "bin" / "alignloop"), "demo", "--tiny", "--workdir", "demo"], cwd=elsewhere)
    assert "newest" in out, out[-2000:]
    assert (elsewhere / "demo" / "feedback.duckdb").is_file()
