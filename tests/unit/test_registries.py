"""Log shapes and training methods are registered once, each in its own module, and everything else
reads the registry: a registered item without its SQL, fixture, builder or test fails here, and so
does a list of names kept beside the registry (docs/extending.md walks through adding one)."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from alignloop.benchmarks.methods import ARMS
from alignloop.config import SourceSettings, TrainingSettings
from alignloop.methods import METHODS, benchmark_arms
from alignloop.planner import Method
from alignloop.shapes import SHAPES
from alignloop.shapes.base import SQL_PARTS

REPO = Path(__file__).resolve().parents[2]
SHAPE_SQL = (*SQL_PARTS, "dependents_sql", "ranks_sql", "ties_sql", "unanswered_sql")


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_registered_shape_has_its_sql_fixture_and_test(name):
    shape = SHAPES[name]
    named = [getattr(shape, attr) for attr in SHAPE_SQL if getattr(shape, attr)]
    missing = [f"sql/{f}" for f in named if not (REPO / "sql" / f).is_file()]
    assert not missing, f"the {name!r} shape names SQL files that do not exist: {missing}"
    assert list((REPO / "sql" / "shapes").glob(f"{name}_*.sql")), f"no sql/shapes/{name}_*.sql for the {name!r} shape"
    fixtures = REPO / "tests" / "fixtures" / "shapes"
    assert [*fixtures.glob(f"{name}.*"), *fixtures.glob(f"{name}_*")], \
        f"no fixture tests/fixtures/shapes/{name}.jsonl (or {name}_<input>.jsonl) for the {name!r} shape"
    assert (REPO / "tests" / "unit" / "shapes" / f"test_{name}.py").is_file(), \
        f"no test tests/unit/shapes/test_{name}.py for the {name!r} shape"


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_registered_method_has_its_builder_and_test(name):
    method = METHODS[name]
    builder = method.load_builder()
    assert callable(builder), f"the {name!r} method's builder {method.builder} is not a function"
    assert (REPO / "tests" / "unit" / "methods" / f"test_{name}.py").is_file(), \
        f"no test tests/unit/methods/test_{name}.py for the {name!r} method"


def test_config_the_planner_and_the_benchmark_read_the_registries():
    assert typing.get_args(SourceSettings.model_fields["shape"].annotation) == tuple(SHAPES)
    assert typing.get_args(TrainingSettings.model_fields["method"].annotation) == ("auto", *METHODS)
    assert typing.get_args(Method) == (*METHODS, "skip")
    assert ARMS == benchmark_arms() and len(set(ARMS)) == len(ARMS)


def test_each_module_registers_the_item_named_after_it():
    assert all(shape.name == name for name, shape in SHAPES.items())
    assert sorted(p.stem for p in (REPO / "pipeline" / "shapes").glob("*.py")
                  if p.stem not in ("__init__", "base")) == sorted(SHAPES)
    assert sorted(p.stem for p in (REPO / "pipeline" / "methods").glob("*.py")
                  if p.stem not in ("__init__", "base")) == sorted(METHODS)


def test_a_module_that_registers_nothing_named_after_it_is_an_error(tmp_path, monkeypatch):
    from alignloop.methods.base import TrainingMethod
    from alignloop.registered import registered_in

    package = tmp_path / "somemethods"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "good.py").write_text("from alignloop.methods.base import TrainingMethod\n"
                                     "GOOD = TrainingMethod('good', 's', 'm:f', 'pairs', 0.1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert list(registered_in("somemethods", [str(package)], TrainingMethod)) == ["good"]
    (package / "misnamed.py").write_text("from alignloop.methods.base import TrainingMethod\n"
                                         "OTHER = TrainingMethod('other', 's', 'm:f', 'pairs', 0.1)\n")
    with pytest.raises(ImportError, match=r"somemethods\.misnamed defines no TrainingMethod named 'misnamed'"):
        registered_in("somemethods", [str(package)], TrainingMethod)
