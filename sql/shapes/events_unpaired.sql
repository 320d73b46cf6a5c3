-- purpose: usable thumbs events -> canonical unpaired rows (prompt, completion, label)
-- grain: one row per thumb event
-- parameters: $source (VARCHAR); reads the temp table events_classified built from events_classified.sql
-- The judgement carries no texts: the answered generation's are joined here, to the usable rows only.
-- Joins as written (LogShape.joins_as_written): the right side is the hash table, so that it holds the
-- narrow judged rows while the generations' texts stream past it.
SELECT c.canonical_id AS event_id, c.source, c.ts, c.user_id, c.a_model_version AS model_version,
       messages_turns(g.messages) AS prompt, g.response AS completion,
       c.value = 'up' AS label,
       true AS ts_observed  -- the feedback's own time: a required column, never a stand-in
FROM (SELECT request_id, messages, response FROM raw_events_generations WHERE source = $source) AS g
JOIN (SELECT * FROM events_classified WHERE problem IS NULL AND kind = 'thumb') AS c
  ON c.request_id = g.request_id
