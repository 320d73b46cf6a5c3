-- purpose: ranked sibling replies of message trees -> canonical ranks, as observed (rank 0 is best)
-- grain: one row per assistant reply ranked against a differently ranked sibling with another text
-- parameters: none (reads the temp table message_trees_classified)
-- group_id: the prompter message the siblings answer; user_id: NULL (a ranking merges many
-- labellers' judgements; no one person's)
SELECT event_id, source, ts, NULL::VARCHAR AS user_id, model_version, prompt, completion, rank, group_id,
       a_id AS answer_id, ts_observed
FROM message_trees_classified
WHERE kind = 'rank'
