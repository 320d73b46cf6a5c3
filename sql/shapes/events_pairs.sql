-- purpose: usable comparison events -> canonical preference pairs (prompt, chosen, rejected)
-- grain: one row per comparison event
-- parameters: $source (VARCHAR); reads the temp table events_classified built from events_classified.sql
-- The judgement carries no texts: both generations' are joined here, to the usable rows only.
-- Joins as written (LogShape.joins_as_written): the right side is the hash table. The generations'
-- texts stream past the narrow judged rows; only the other answer's response is held, once per pair.
WITH usable AS (
    SELECT * FROM events_classified WHERE problem IS NULL AND kind = 'comparison'
),
other AS (
    SELECT u.canonical_id, u.request_id, u.value, u.source, u.ts, u.user_id, u.a_model_version, u.b_model_version,
           g.response AS other_response
    FROM (SELECT request_id, response FROM raw_events_generations WHERE source = $source) AS g
    JOIN usable AS u ON u.other_request_id = g.request_id
)
SELECT o.canonical_id AS event_id, o.source, o.ts, o.user_id,
       CASE WHEN o.a_model_version IS NOT DISTINCT FROM o.b_model_version THEN o.a_model_version
            ELSE concat_ws(' vs ', o.a_model_version, o.b_model_version) END AS model_version,
       messages_turns(g.messages) AS prompt,
       CASE WHEN o.value = 'a' THEN g.response ELSE o.other_response END AS chosen,
       CASE WHEN o.value = 'a' THEN o.other_response ELSE g.response END AS rejected,
       true AS ts_observed  -- the feedback's own time: a required column, never a stand-in
FROM (SELECT request_id, messages, response FROM raw_events_generations WHERE source = $source) AS g
JOIN other AS o ON o.request_id = g.request_id
