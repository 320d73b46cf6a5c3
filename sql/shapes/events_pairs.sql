-- purpose: usable comparison events -> canonical preference pairs (prompt, chosen, rejected)
-- grain: one row per comparison event
-- parameters: none (reads the temp table events_classified built from events_classified.sql)
SELECT canonical_id AS event_id, source, ts, user_id,
       CASE WHEN a_model_version IS NOT DISTINCT FROM b_model_version THEN a_model_version
            ELSE concat_ws(' vs ', a_model_version, b_model_version) END AS model_version,
       a_prompt AS prompt,
       CASE WHEN value = 'a' THEN a_response ELSE b_response END AS chosen,
       CASE WHEN value = 'a' THEN b_response ELSE a_response END AS rejected,
       true AS ts_observed  -- the feedback's own time: a required column, never a stand-in
FROM events_classified
WHERE problem IS NULL AND kind = 'comparison'
