-- purpose: ranked sibling replies of message trees -> canonical pairs (better-ranked chosen)
-- grain: one row per (prompter message, better-ranked reply, worse-ranked reply)
-- parameters: none (reads the temp table message_trees_classified)
-- user_id: NULL (a ranking merges many labellers' judgements; no one person's)
-- ts: the later of the two replies' times (exports carry no time for the ranking itself)
SELECT event_id, source, ts, NULL::VARCHAR AS user_id, model_version, prompt, chosen, rejected
FROM message_trees_classified
WHERE kind = 'pair'
