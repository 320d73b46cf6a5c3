-- purpose: the `unpaired` shape yields no stored pairs (pairs from thumbs are derived when a snapshot is read)
-- grain: none (always empty)
-- parameters: none (reads the temp table unpaired_classified)
SELECT canonical_id AS event_id, source, ts, NULL::VARCHAR AS user_id, model_version,
       prompt_turns AS prompt, completion AS chosen, completion AS rejected, ts_observed
FROM unpaired_classified
WHERE false
