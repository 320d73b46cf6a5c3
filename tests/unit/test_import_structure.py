"""The import graph has one root and runs one way: flows/cli -> the library -> connectors.

Every import is read from the source (function-local ones included), so a circle hidden inside a
function body counts as a circle, and an import of a concrete connector from the core counts too."""

from __future__ import annotations

import ast
import tomllib
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OLD_ROOTS = {"pipeline", "flows", "connectors", "benchmarks"}


@cache
def modules() -> dict[str, Path]:
    """Every module of the installed package, by its import name, from pyproject's package-dir."""
    package_dir = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    found: dict[str, Path] = {}
    for package, folder in package_dir.items():
        for path in (REPO / folder).rglob("*.py"):
            rel = path.relative_to(REPO / folder).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            if any(p not in _packages_under(REPO / folder) for p in _dirs(rel)):
                continue  # a folder mapped to its own import name (flows/cli) is walked under that name
            found[".".join((package, *parts))] = path
    return found


def _dirs(rel: Path) -> list[str]:
    return [str(Path(*rel.parts[: i + 1])) for i in range(len(rel.parts) - 1)]


@cache
def _packages_under(root: Path) -> frozenset[str]:
    mapped = {Path(d) for d in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
              ["package-dir"].values()}
    return frozenset(str(d.relative_to(root)) for d in root.rglob("*") if d.is_dir()
                     and (d / "__init__.py").is_file() and d.relative_to(REPO) not in mapped)


def imports_of(name: str) -> set[str]:
    """The modules `name` imports, each resolved to the deepest module that exists."""
    tree = ast.parse(modules()[name].read_text())
    package = name if modules()[name].name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                child = f"{base}.{alias.name}"
                out.add(child if child in modules() else base)
    return out


def graph() -> dict[str, set[str]]:
    return {m: {i for i in imports_of(m) if i in modules() and i != m} for m in modules()}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in {"connectors", "flows", "cli", "benchmarks"} else "core"


def test_nothing_imports_the_old_top_level_names():
    bad = {(m, i) for m in modules() for i in imports_of(m) if i.split(".")[0] in OLD_ROOTS}
    assert not bad, f"import through `alignloop.` instead: {sorted(bad)}"


def test_the_core_knows_connectors_only_through_their_contract():
    allowed = {"alignloop.connectors", "alignloop.connectors.base"}
    bad = {(m, i) for m, deps in graph().items() if _layer(m) == "core" for i in deps
           if _layer(i) == "connectors" and i not in allowed}
    assert not bad, f"the core may import connectors.base and the entry-point registry only: {sorted(bad)}"


def test_imports_run_one_way():
    may = {"connectors": {"connectors"}, "core": {"core", "connectors"},
           "flows": {"flows", "core", "connectors"}, "cli": {"cli", "flows", "core", "connectors", "benchmarks"},
           "benchmarks": {"benchmarks", "core", "connectors"}}
    bad = {(m, i) for m, deps in graph().items() for i in deps if _layer(i) not in may[_layer(m)]}
    assert not bad, f"an import against the direction cli -> flows -> core -> connectors: {sorted(bad)}"
    core_prefect = {m for m in modules() if _layer(m) in {"core", "connectors"}
                    and any(i.split(".")[0] == "prefect" for i in imports_of(m))}
    assert not core_prefect, f"the library and the connectors never import prefect: {sorted(core_prefect)}"


def test_no_import_circles():
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not circles, f"modules that import each other (function-local imports count): {circles}"


def test_the_graph_reader_sees_function_local_imports(tmp_path):
    """The reader the tests above rely on finds an import inside a function body."""
    assert "alignloop.ingest.store" in imports_of("alignloop.ingest.frame")
    assert modules()["alignloop.cli.main"].name == "main.py"
    assert "alignloop.flows.cli" not in modules()
