"""The package list in pyproject.toml covers the checkout: a sub-package or sql/ folder left out is
missing from `pip install .` and the wheel (the slow wheel test installs one; this finds it in a second)."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_package_and_sql_folder_is_in_the_wheel_list():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    code = {".".join(p.parent.relative_to(REPO).parts)
            for top in ("pipeline", "flows", "connectors", "benchmarks") for p in (REPO / top).rglob("__init__.py")}
    sql = {".".join(("pipeline", *d.relative_to(REPO).parts)) for d in [REPO / "sql", *(REPO / "sql").rglob("*")]
           if d.is_dir() and any(d.glob("*.sql"))}
    assert code | sql <= listed, f"add to [tool.setuptools] packages in pyproject.toml: {sorted((code | sql) - listed)}"
    assert config["package-dir"] == {"pipeline.sql": "sql"}
    assert all(config["package-data"].get(p) == ["*.sql"] for p in sql), "each sql package ships its *.sql files"
