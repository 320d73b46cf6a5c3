-- purpose: replies with a net emoji vote -> canonical thumbs (more "+1" than "-1" = up)
-- grain: one row per assistant reply whose "+1" and "-1" counts differ
-- parameters: none (reads the temp table message_trees_classified)
SELECT event_id, source, ts, NULL::VARCHAR AS user_id, model_version, prompt, completion, label, ts_observed
FROM message_trees_classified
WHERE kind = 'thumb'
