-- purpose: usable thumbs events -> canonical unpaired rows (prompt, completion, label)
-- grain: one row per thumb event
-- parameters: none (reads the temp table events_classified built from events_classified.sql)
SELECT canonical_id AS event_id, source, ts, user_id, a_model_version AS model_version,
       a_prompt AS prompt, a_response AS completion, value = 'up' AS label,
       true AS ts_observed  -- the feedback's own time: a required column, never a stand-in
FROM events_classified
WHERE problem IS NULL AND kind = 'thumb'
