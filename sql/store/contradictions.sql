-- purpose: items (one prompt and answer, or one prompt and answer pair) that received opposite
--          judgements; they are kept, and counted here as evidence of label noise
-- grain: one row per source with contradictory items
-- parameters: none; __UNPAIRED__ and __PAIRS__ are (source, item_key, judgement) rows of each canonical
--             table (pipeline/ingest/canonical.py item_judgements, filled in by the store)
SELECT source, count(*) AS items
FROM (
    SELECT source, item_key FROM (
__UNPAIRED__
    )
    GROUP BY source, item_key HAVING count(DISTINCT judgement) > 1
    UNION ALL
    SELECT source, item_key FROM (
__PAIRS__
    )
    GROUP BY source, item_key HAVING count(DISTINCT judgement) > 1
)
GROUP BY source
ORDER BY source
