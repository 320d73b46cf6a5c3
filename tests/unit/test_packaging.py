"""The package list in pyproject.toml covers the checkout under one import root: a sub-package or sql/
folder left out is missing from `pip install .` and the wheel (the slow wheel test installs one and checks
its top-level names; this finds a missing entry in a second)."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def _package_name(folder: Path, package_dir: dict[str, str]) -> str:
    """The import name setuptools gives `folder`: the deepest package-dir entry above it, plus the rest."""
    rel = folder.relative_to(REPO)
    best = max((p for p, d in package_dir.items() if rel.parts[: len(Path(d).parts)] == Path(d).parts),
               key=lambda p: len(Path(package_dir[p]).parts), default=None)
    assert best is not None, f"{rel} is under no package-dir entry in pyproject.toml"
    return ".".join((best, *rel.parts[len(Path(package_dir[best]).parts):]))


def test_every_package_and_sql_folder_is_in_the_wheel_list():
    config = _config()
    listed, package_dir = set(config["packages"]), config["package-dir"]
    code = {_package_name(p.parent, package_dir)
            for top in ("pipeline", "flows", "connectors", "benchmarks") for p in (REPO / top).rglob("__init__.py")}
    sql_dirs = [d for d in [REPO / "sql", *(REPO / "sql").rglob("*")] if d.is_dir() and any(d.glob("*.sql"))]
    sql = {_package_name(d, package_dir) for d in sql_dirs}
    assert code | sql <= listed, f"add to [tool.setuptools] packages in pyproject.toml: {sorted((code | sql) - listed)}"
    assert all(config["package-data"].get(p) == ["*.sql"] for p in sql), "each sql package ships its *.sql files"


def test_one_import_root():
    """Every installed package sits under `alignloop`: no generic top-level name reaches site-packages."""
    config = _config()
    assert {p.split(".")[0] for p in config["packages"]} == {"alignloop"}
    assert {p.split(".")[0] for p in config["package-dir"]} == {"alignloop"}
    assert config["package-dir"]["alignloop"] == "pipeline"
