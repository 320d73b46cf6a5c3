-- purpose: the `comparisons` shape yields no unpaired rows (thumbs are derived from its pairs when a snapshot is read)
-- grain: none (always empty)
-- parameters: none (reads the temp table comparisons_classified)
SELECT canonical_id AS event_id, source, ts, NULL::VARCHAR AS user_id, NULL::VARCHAR AS model_version,
       prompt_turns AS prompt, answer_a AS completion, true AS label, ts_observed
FROM comparisons_classified
WHERE false
