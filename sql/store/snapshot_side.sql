-- purpose: one side of a snapshot's train/holdout split of one canonical table, oldest first; a cap
--          keeps the newest rows of the side. The split and the cap run here, so a reader fetches only
--          the rows it uses, never the whole history
-- grain: one row per canonical row on that side of the split
-- parameters: $holdout_fraction (DOUBLE), $holdout (BOOLEAN: true reads the held-out side), $cap (BIGINT,
--             newest rows kept; NULL keeps all), $high (read by the rows placeholder); the placeholders are
--             the snapshot's rows (store/snapshot_rows.sql) and the canonical schema's columns (filled in by the store)
-- Membership is holdout_position(prompt) < $holdout_fraction (sql/holdout_macros.sql): the prompt hash
-- alignloop.schema.is_holdout computes, so both sides agree row for row.
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
ORDER BY ts, event_id
