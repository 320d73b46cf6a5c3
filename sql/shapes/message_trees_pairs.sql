-- purpose: the `message_trees` shape yields no stored pairs: ranked replies are stored as ranks and their
--          pairs are derived when a snapshot is read (pipeline/conversions.py, pairs_from_ranks)
-- grain: none (always empty)
-- parameters: none (reads the temp table message_trees_classified)
SELECT event_id, source, ts, NULL::VARCHAR AS user_id, model_version, prompt, chosen, rejected, ts_observed
FROM message_trees_classified
WHERE false
