-- purpose: scores that rest on traces or observations a newer version has just replaced: what they
--          became (thumbs, quarantine) is dropped and they are judged again in this run
-- grain: one row per score (its key in raw_langfuse_scores) naming a replaced trace or observation
-- parameters: $source (VARCHAR); reads the temp table replaced_keys (key VARCHAR) of replaced trace or
--             observation ids
SELECT id AS key
FROM raw_langfuse_scores
WHERE source = $source
  AND (trace_id IN (SELECT key FROM replaced_keys) OR observation_id IN (SELECT key FROM replaced_keys))
