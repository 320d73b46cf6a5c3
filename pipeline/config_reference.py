"""The config reference (docs/config.md), generated from the settings' own field descriptions.

One source of truth: every key's type, default and description come from the pydantic models in
config.py, so the page cannot drift from the code (tests/unit/test_docs.py fails when it is stale, or
when a key has no description). Regenerate with `make docs`
(`python -m alignloop.config_reference > docs/config.md`).
"""

from __future__ import annotations

import sys
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from alignloop.config import Settings

HEADER = """# Config reference (`alignloop.yaml`)

Generated from the settings' descriptions in `pipeline/config.py` by `make docs`; do not edit by hand.

Unknown keys, and keys written twice, are errors. Relative paths are relative to the config file's
folder. `${NAME}` in a value is replaced by the environment variable `NAME` (use it for passwords).
Every key may also be set from the environment as `ALIGNLOOP__SECTION__KEY`, at any depth (for example
`ALIGNLOOP__TRAINING__MAX_STEPS=200`, `ALIGNLOOP__TRAINING__LORA__R=8`): a list or mapping is written as
JSON (`ALIGNLOOP__TRAINING__LORA__TARGET_MODULES='["q_proj"]'`), `null` unsets a key, and a variable
that names no setting is an error.

A key whose default reads **planner decides** is chosen per run from the data while it is unset (or
`auto`): setting it fixes the value and turns the planner's scaling of that key off. Leave those keys
out unless you mean to.
"""


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation) if a is not Ellipsis)
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _planner_decides(field: FieldInfo) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("planner_decides"))


def _default(field: FieldInfo) -> str:
    if _planner_decides(field):
        return "**planner decides**" if field.default is None else f"`{field.default}` (**planner decides**)"
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True) if field.default is PydanticUndefined else field.default
    if isinstance(value, BaseModel):
        return "(section)"
    if value is None:
        return "unset"
    if value in ({}, (), []):
        return "empty"
    return f"`{value}`"


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    candidates = [annotation, *typing.get_args(annotation)]
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)


def _section(model: type[BaseModel], prefix: str, out: list[str]) -> None:
    doc = (model.__doc__ or "").strip()
    out += [f"## `{prefix}`" if prefix else "## Top level", ""] + ([doc, ""] if doc else [])
    out += ["| key | type | default | what it does |", "|---|---|---|---|"]
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        sub = _nested_model(field.annotation)
        key = f"{prefix}.{name}" if prefix else name
        if sub is not None:
            key += "[]" if typing.get_origin(field.annotation) in (tuple, list) else ""
            nested.append((key, sub))
            many = key.endswith("[]")
            kind = "list of sections" if many else "section"
            out.append(f"| `{name}` | {kind} | {_default(field)} | see [`{key}`](#{_anchor(key)}) below |")
            continue
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        out.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {description} |")
    out.append("")
    for key, sub in nested:
        _section(sub, key, out)


def _anchor(key: str) -> str:
    """The anchor GitHub gives a heading of the key: lower case, punctuation but - and _ dropped."""
    return "".join(c for c in key.lower() if c.isalnum() or c in "-_")


def render() -> str:
    out = [HEADER]
    _section(Settings, "", out)
    return "\n".join(out).rstrip() + "\n"


def undocumented() -> list[str]:
    """Keys with no description: each one is a gap in the reference."""
    missing: list[str] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = f"{prefix}.{name}" if prefix else name
            sub = _nested_model(field.annotation)
            if sub is not None:
                walk(sub, key)
            elif not field.description:
                missing.append(key)

    walk(Settings, "")
    return missing


if __name__ == "__main__":
    sys.stdout.write(render())
