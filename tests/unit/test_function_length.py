"""The library's functions stay short enough to read in one screen: none in pipeline/ runs past
MAX_LINES (from its `def` line to its last line, docstring and comments included). A longer one is
split into named steps, as FeedbackStore.ingest and evaluate_candidate are."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAX_LINES = 60


def long_functions(root: Path, limit: int = MAX_LINES) -> list[str]:
    """`path:line name (n lines)` for every function or method under root longer than limit, nested ones too."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_in_the_library_is_longer_than_sixty_lines():
    too_long = long_functions(REPO / "pipeline")
    assert not too_long, f"split these into named steps (at most {MAX_LINES} lines each): {too_long}"


def test_the_count_sees_methods_and_nested_functions(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    body = "\n".join(f"            x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "m.py").write_text(f"class C:\n    def outer(self):\n        def inner():\n{body}\n"
                                   f"            return 0\n        return inner\n\n\ndef short():\n    return 1\n")
    found = long_functions(tmp_path)
    assert [f.split(" ")[1] for f in found] == ["outer", "inner"]
    assert found[1].startswith("m.py:3 inner (")
