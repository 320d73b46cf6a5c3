-- purpose: the canonical rows of __TABLE__ that a snapshot holds, as they were when it was taken: current
--          rows up to its high-water batch, and rows a later batch replaced (kept in superseded___TABLE__)
-- grain: one row per canonical row in the snapshot (event_id unique)
-- parameters: $high (BIGINT, the snapshot's high-water batch); __TABLE__ is unpaired, pairs, ranks or ties (filled in by the store)
-- An old version replaced at or before $high is not here (its superseded_batch <= $high); its replacement
-- is. Batches after $high change neither part, so a snapshot reads the same rows however many fixes follow.
SELECT * EXCLUDE (superseded_batch)
FROM (
    SELECT *, NULL::BIGINT AS superseded_batch FROM __TABLE__ WHERE batch_id <= $high
    UNION ALL BY NAME
    SELECT * FROM superseded___TABLE__ WHERE batch_id <= $high AND superseded_batch > $high
)
