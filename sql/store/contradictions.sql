-- purpose: items (one prompt and answer, or one prompt and answer pair) that received opposite
--          judgements; they are kept, and counted here as evidence of label noise
-- grain: one row per source with contradictory items
-- parameters: none
SELECT source, count(*) AS items
FROM (
    SELECT source, item_key FROM unpaired WHERE item_key IS NOT NULL
    GROUP BY source, item_key HAVING count(DISTINCT label) > 1
    UNION ALL
    SELECT source, item_key FROM pairs WHERE item_key IS NOT NULL
    GROUP BY source, item_key HAVING count(DISTINCT chosen) > 1
)
GROUP BY source
ORDER BY source
