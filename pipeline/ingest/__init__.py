"""Ingest: every source's rows into the feedback store, in one transaction per source.

`store` holds FeedbackStore (the DuckDB file: merge, cursors, quarantine, snapshots); `frame` is the
Python door (`alignloop.ingest_frame`); the rest is the machinery behind FeedbackStore.ingest.
`cursors` turns a stored position into the next read window; `landing` reads one input of a source
into its landing table, sending every bad row to quarantine with its reason; `canonical` removes
duplicates, applies the per-user cap and times out feedback that waits too long for its generation;
`prepared` lets the landing checks run on the rows a shape's per-batch step made (every shape but
`events`).
"""
