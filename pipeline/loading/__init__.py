"""The machinery behind FeedbackStore.ingest: cursors, landing checks, and canonical-row hygiene.

`cursors` turns a stored position into the next read window; `landing` reads one input of a source
into its landing table, sending every bad row to quarantine with its reason; `canonical` removes
duplicates, applies the per-user cap and times out feedback that waits too long for its generation;
`prepared` lets the landing checks run on the rows a shape's per-batch step made (every shape but
`events`).
"""
