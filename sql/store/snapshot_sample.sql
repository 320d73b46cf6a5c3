-- purpose: a seeded sample of the rows one side of a snapshot's train/holdout split reads (the side's newest $cap
--          rows: store/snapshot_side.sql, the rows training reads), at most $per_group rows of each group (a thumbs
--          label, or the whole table), without fetching the rest: what a plan's timed steps train on
-- grain: one row per sampled canonical row, oldest first
-- parameters: snapshot_side.sql's ($holdout_fraction, $holdout, $cap, $high), $per_group (BIGINT), $seed (BIGINT:
--             the same seed draws the same rows); the placeholders are that side's query, the canonical schema's
--             columns and the grouping expression (a column name or a constant, filled in by the store)
SELECT __COLUMNS__
FROM (
__SIDE_ROWS__
)
QUALIFY row_number() OVER (PARTITION BY __GROUP__ ORDER BY hash(event_id, $seed), event_id) <= $per_group
ORDER BY ts, event_id
