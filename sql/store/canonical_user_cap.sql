-- purpose: canonical rows of this batch beyond the per-user cap (oldest rows count first)
-- grain: one row per (table, event_id) over the cap
-- parameters: $batch_id (BIGINT), $cap (BIGINT)
WITH touched AS (
    SELECT DISTINCT user_id FROM unpaired WHERE batch_id = $batch_id AND user_id IS NOT NULL
    UNION SELECT DISTINCT user_id FROM pairs WHERE batch_id = $batch_id AND user_id IS NOT NULL
),
rows AS (
    SELECT 'unpaired' AS tbl, event_id, user_id, ts, batch_id FROM unpaired WHERE user_id IN (SELECT user_id FROM touched)
    UNION ALL
    SELECT 'pairs', event_id, user_id, ts, batch_id FROM pairs WHERE user_id IN (SELECT user_id FROM touched)
)
SELECT tbl, event_id
FROM (SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY batch_id, ts, event_id) AS n FROM rows)
WHERE n > $cap AND batch_id = $batch_id
