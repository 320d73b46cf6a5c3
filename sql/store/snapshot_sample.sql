-- purpose: a seeded sample of one side of a snapshot's train/holdout split of one canonical table, at most
--          $per_group rows of each group (a thumbs label, or the whole table), drawn from the side's newest $cap
--          rows (the ones training reads; store/snapshot_side.sql), without fetching the rest: what a plan's timed
--          steps train on
-- grain: one row per sampled canonical row, oldest first
-- parameters: $holdout_fraction (DOUBLE), $holdout (BOOLEAN: true samples the held-out side), $per_group (BIGINT),
--             $cap (BIGINT: newest rows of the side drawn from; NULL: all),
--             $seed (BIGINT: the same seed draws the same rows), $high (read by the rows placeholder); the
--             placeholders are the snapshot's rows (store/snapshot_rows.sql), the canonical schema's columns and the
--             grouping expression (a column name or a constant, filled in by the store)
SELECT __COLUMNS__
FROM (
    SELECT __COLUMNS__
    FROM (
__SNAPSHOT_ROWS__
    )
    WHERE (holdout_position(prompt) < $holdout_fraction) = $holdout
    ORDER BY ts DESC, event_id DESC
    LIMIT $cap
)
QUALIFY row_number() OVER (PARTITION BY __GROUP__ ORDER BY hash(event_id, $seed), event_id) <= $per_group
ORDER BY ts, event_id
