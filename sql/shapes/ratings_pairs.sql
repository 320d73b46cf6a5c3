-- purpose: two rated answers to one prompt, scores at least the margin apart -> canonical pairs
-- grain: one row per (higher-rated row, lower-rated row) of one prompt
-- parameters: none (reads the temp table ratings_classified)
-- ts: the later of the two ratings' times; user_id: the rater when one person rated both, else NULL
SELECT event_id, source, ts, user_id, model_version, prompt, chosen, rejected, ts_observed
FROM ratings_classified
WHERE kind = 'pair'
