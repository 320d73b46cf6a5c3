-- purpose: usable rated answers -> canonical ranks, as observed: the score, and the margin by which two
--          answers to one prompt must differ to give a pair (derived when a snapshot is read)
-- grain: one row per usable raw_ratings row
-- parameters: none (reads the temp table ratings_classified)
-- user_id: the rater (a pair of two answers one person rated keeps them)
SELECT event_id, source, ts, user_id, model_version, prompt, completion, NULL::BIGINT AS rank, score,
       pair_margin, group_id, a_id AS answer_id, ts_observed
FROM ratings_classified
WHERE kind = 'score'
