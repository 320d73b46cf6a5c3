"""Log shapes: what a source's raw rows mean and how they become canonical rows.

A shape names the inputs it needs (tables with a key and a cursor column), the landing tables they
go to, and the SQL files that turn landed rows into canonical unpaired rows, pairs and quarantine.
A source's `mapping` renames its columns to the shape's names, per input.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import ConfigError


@dataclass(frozen=True)
class ShapeInput:
    name: str                   # e.g. "feedback"; the key under a source's mapping
    default_table: str          # the source table read when the mapping names none
    raw_table: str              # landing table in the store
    key: str                    # natural key within a source (idempotent merge)
    cursor: str                 # incremental column (half-open windows on it)
    columns: tuple[str, ...]    # canonical column names the shape reads
    text_columns: tuple[str, ...] = ()        # free text: PII-scrubbed, size-limited, must not be blank
    user_columns: tuple[str, ...] = ("user_id",)  # hashed with the store's salt when landed


@dataclass(frozen=True)
class LogShape:
    name: str
    raw_tables_sql: str         # DDL of the landing tables
    classify_sql: str           # builds temp table <name>_classified with a `problem` column
    unpaired_sql: str
    pairs_sql: str
    quarantine_sql: str
    inputs: tuple[ShapeInput, ...]
    # keys of the last input resting on replaced rows of an earlier input (reads temp table replaced_keys)
    dependents_sql: str | None = None

    def input(self, name: str) -> ShapeInput:
        return next(i for i in self.inputs if i.name == name)


EVENTS = LogShape(
    name="events",
    raw_tables_sql="shapes/events_raw_tables.sql",
    classify_sql="shapes/events_classified.sql",
    unpaired_sql="shapes/events_unpaired.sql",
    pairs_sql="shapes/events_pairs.sql",
    quarantine_sql="shapes/events_quarantine.sql",
    dependents_sql="shapes/events_dependents.sql",
    inputs=(
        # Generations land first so that feedback read in the same run finds them.
        ShapeInput(
            name="generations", default_table="generations", raw_table="raw_events_generations",
            key="request_id", cursor="ts",
            columns=("request_id", "ts", "user_id", "model_version", "messages", "response"),
            text_columns=("messages", "response"),
        ),
        ShapeInput(
            name="feedback", default_table="feedback_events", raw_table="raw_events_feedback",
            key="event_id", cursor="ts",
            columns=("event_id", "request_id", "ts", "user_id", "kind", "value", "other_request_id"),
        ),
    ),
)

SHAPES: dict[str, LogShape] = {EVENTS.name: EVENTS}


@dataclass(frozen=True)
class ResolvedInput:
    """One input of one source: which source table and columns feed which canonical columns."""

    spec: ShapeInput
    table: str
    source_columns: dict[str, str]  # canonical name -> source column name


def resolve_mapping(shape_name: str, mapping: dict[str, dict[str, str]], where: str) -> list[ResolvedInput]:
    """Check a source's mapping against its shape; unknown inputs or columns are ConfigErrors."""
    if shape_name not in SHAPES:
        raise ConfigError(f"{where}.shape: unknown shape {shape_name!r} (known: {', '.join(SHAPES)})")
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
        for column in given:
            if column not in spec.columns:
                raise ConfigError(
                    f"{where}.mapping.{spec.name}.{column}: not a column of the {shape_name!r} shape's "
                    f"{spec.name} input (columns: {', '.join(spec.columns)}, plus 'table')"
                )
        resolved.append(ResolvedInput(spec, table, {c: given.get(c, c) for c in spec.columns}))
    return resolved
