-- purpose: the `ratings` shape yields no stored pairs: rated answers are stored with their scores (ranks
--          table) and the pairs of answers a margin apart are derived when a snapshot is read
--          (sql/derived_pairs_from_ranks.sql)
-- grain: none (always empty)
-- parameters: none (reads the temp table ratings_classified)
SELECT event_id, source, ts, user_id, model_version, prompt, completion AS chosen, completion AS rejected,
       ts_observed
FROM ratings_classified
WHERE false
