-- purpose: the `corrections` shape yields no stored unpaired rows (thumbs are derived when a snapshot is read)
-- grain: none (always empty)
-- parameters: none (reads the temp table corrections_classified)
SELECT canonical_id AS event_id, source, ts, NULL::VARCHAR AS user_id, model_version,
       prompt_turns AS prompt, chosen AS completion, true AS label, ts_observed
FROM corrections_classified
WHERE false
