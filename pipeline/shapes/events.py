"""The `events` shape: generations and feedback events (thumbs, comparisons) joined by request id."""

from __future__ import annotations

from alignloop.shapes.base import LogShape, ShapeInput

EVENTS = LogShape(
    name="events",
    dependents_sql="shapes/events_dependents.sql",
    inputs=(
        # Generations land first so that feedback read in the same run finds them.
        ShapeInput(
            name="generations", default_table="generations", raw_table="raw_events_generations",
            key="request_id", cursor="ts",
            columns=("request_id", "ts", "user_id", "model_version", "messages", "response"),
            text_columns=("messages", "response"), json_columns=("messages",),
        ),
        ShapeInput(
            name="feedback", default_table="feedback_events", raw_table="raw_events_feedback",
            key="event_id", cursor="ts",
            columns=("event_id", "request_id", "ts", "user_id", "kind", "value", "other_request_id"),
        ),
    ),
    doc="generations + feedback events (thumb / comparison) joined by request id",
    pending_input="feedback",
    joins_as_written=True,
)
