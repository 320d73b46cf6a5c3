-- purpose: rated answers past a threshold -> canonical thumbs
-- grain: one row per rated row at or above up_threshold or at or below down_threshold
-- parameters: none (reads the temp table ratings_classified)
SELECT event_id, source, ts, user_id, model_version, prompt, completion, label, ts_observed
FROM ratings_classified
WHERE kind = 'thumb'
