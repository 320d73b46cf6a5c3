-- purpose: two rated answers to one prompt, scores at least the margin apart -> canonical pairs
-- grain: one row per (higher-rated row, lower-rated row) of one prompt
-- parameters: none (reads the temp table ratings_classified)
SELECT event_id, source, ts, user_id, model_version, prompt, chosen, rejected
FROM ratings_classified
WHERE kind = 'pair'
