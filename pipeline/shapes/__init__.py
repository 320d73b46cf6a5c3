"""Log shapes: what a source's raw rows mean and how they become canonical rows.

A shape names the inputs it needs, the landing tables they go to, a per-batch `prepare` step and the
SQL files (sql/shapes/<shape>_*.sql) that turn landed rows into canonical unpaired rows, pairs and
quarantine. A source's `mapping` renames its columns to the shape's names, per input, and its
`shape_options` holds the shape's own settings (thresholds, margins), validated here.

Each module of this package (besides base) registers one shape: the LogShape it defines under its own
module name. SHAPES is read from them, so a new shape is its module, its SQL, its fixture and its test
(docs/extending.md); config validation and the store read SHAPES, never a list of names.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from alignloop.errors import ConfigError
from alignloop.registered import registered_in
from alignloop.shapes.base import LogShape, ResolvedInput, ShapeInput

SHAPES: dict[str, LogShape] = registered_in(__name__, __path__, LogShape)

__all__ = ["SHAPES", "LogShape", "ResolvedInput", "ShapeInput", "resolve_mapping", "shape_options",
           "sql_params"]


def shape_options(shape_name: str, options: dict[str, Any] | None, where: str) -> BaseModel:
    """A source's shape_options validated against its shape; errors name the field and the fix."""
    if shape_name not in SHAPES:
        raise ConfigError(f"{where}.shape: unknown shape {shape_name!r} (known: {', '.join(SHAPES)})")
    model = SHAPES[shape_name].options
    try:
        return model.model_validate(options or {})
    except ValidationError as e:
        first = e.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "(top level)"
        if first["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields) or "none"
            msg = f"not a setting of the {shape_name!r} shape (its settings: {known})"
        else:
            msg = first["msg"].removeprefix("Value error, ")
            if not isinstance(first.get("input"), (dict, list)):
                msg += f" (got {first.get('input')!r})"
        raise ConfigError(f"{where}.shape_options.{name}: {msg}") from None


def sql_params(source: Any) -> dict[str, Any]:
    """The named parameters a source's classify SQL binds: $source plus the shape's SQL options."""
    shape = SHAPES[source.shape]
    options = shape_options(source.shape, getattr(source, "shape_options", None), f"sources[{source.name}]")
    return {"source": source.name, **{k: getattr(options, k) for k in shape.sql_options}}


def resolve_mapping(
    shape_name: str, mapping: dict[str, dict[str, str | list[str]]], where: str, options: dict[str, Any] | None = None
) -> list[ResolvedInput]:
    """Check a source's mapping (and shape options) against its shape; mistakes are ConfigErrors."""
    validated = shape_options(shape_name, options, where)
    shape = SHAPES[shape_name]
    known_inputs = {i.name for i in shape.inputs}
    for name in mapping:
        if name not in known_inputs:
            raise ConfigError(
                f"{where}.mapping.{name}: the {shape_name!r} shape has no input {name!r} "
                f"(inputs: {', '.join(sorted(known_inputs))})"
            )
    resolved = []
    for spec in shape.inputs:
        given = dict(mapping.get(spec.name, {}))
        table = given.pop("table", spec.default_table)
        if not isinstance(table, str):
            raise ConfigError(f"{where}.mapping.{spec.name}.table: name one table (got {table!r})")
        for column, value in given.items():
            if column not in spec.columns:
                raise ConfigError(
                    f"{where}.mapping.{spec.name}.{column}: not a column of the {shape_name!r} shape's "
                    f"{spec.name} input (columns: {', '.join(spec.columns)}, plus 'table')"
                )
            if isinstance(value, list) and (column not in spec.list_columns or not value):
                why = "name one source column, not a list" if column not in spec.list_columns else \
                    "name at least one source column"
                raise ConfigError(f"{where}.mapping.{spec.name}.{column}: {why} (got {value!r})")
        lists = {c: tuple(v) for c, v in given.items() if isinstance(v, list)}
        resolved.append(ResolvedInput(
            spec, table, {c: given.get(c, c) for c in spec.columns if c not in lists}, explicit=frozenset(given),
            prepare=shape.prepare, options=validated, column_lists=lists,
        ))
    return resolved
