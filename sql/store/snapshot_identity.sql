-- purpose: a snapshot's id and row counts. The id is md5 of the event ids it holds, so the same content
--          always gets the same id; a row that replaced an earlier version of its event id (a fix from
--          upstream) adds its batch, so a snapshot after a fix differs from the one before it
-- grain: one row (snapshot_id, n_unpaired, n_pairs); n_pairs counts observed pairs (the store adds those
--        derived from the snapshot's ranks, which take part in the id)
-- parameters: $high (BIGINT, the high-water batch); the placeholders below are store/snapshot_rows.sql
--             for each canonical table, for ranks and for ties (filled in by the store)
WITH held AS (
    SELECT event_id, batch_id, 'unpaired' AS kind FROM (
__UNPAIRED__
    )
    UNION ALL
    SELECT event_id, batch_id, 'pairs' AS kind FROM (
__PAIRS__
    )
    UNION ALL
    SELECT event_id, batch_id, 'ranks' AS kind FROM (
__RANKS__
    )
    UNION ALL
    SELECT event_id, batch_id, 'ties' AS kind FROM (
__TIES__
    )
), replaced AS (
    SELECT event_id FROM superseded_unpaired WHERE superseded_batch <= $high
    UNION
    SELECT event_id FROM superseded_pairs WHERE superseded_batch <= $high
    UNION
    SELECT event_id FROM superseded_ranks WHERE superseded_batch <= $high
    UNION
    SELECT event_id FROM superseded_ties WHERE superseded_batch <= $high
)
SELECT md5(coalesce(string_agg(event_id || CASE WHEN event_id IN (SELECT event_id FROM replaced)
                                               THEN ':' || batch_id::VARCHAR ELSE '' END,
                               ',' ORDER BY event_id), '')),
       count(*) FILTER (WHERE kind = 'unpaired'),
       count(*) FILTER (WHERE kind = 'pairs')
FROM held
