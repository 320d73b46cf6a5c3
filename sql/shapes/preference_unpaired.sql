-- purpose: the `preference` shape yields no unpaired rows (thumbs are derived when a snapshot is read)
-- grain: none (always empty)
-- parameters: none (reads the temp table preference_classified)
SELECT canonical_id AS event_id, source, ts, NULL::VARCHAR AS user_id, model_version,
       prompt_turns AS prompt, chosen AS completion, true AS label, ts_observed
FROM preference_classified
WHERE false
