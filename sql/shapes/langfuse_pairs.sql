-- purpose: the `langfuse` shape yields no stored pairs (pairs from thumbs are derived when a snapshot is read)
-- grain: none (always empty)
-- parameters: none (reads the temp table langfuse_classified)
SELECT canonical_id AS event_id, source, ts, NULL::VARCHAR AS user_id, model_version, prompt,
       completion AS chosen, completion AS rejected, ts_observed
FROM langfuse_classified
WHERE false
