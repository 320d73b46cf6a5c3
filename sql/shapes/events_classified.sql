-- purpose: judge the feedback events of one source landed in this batch, plus those still pending:
--          usable, pending, or broken
-- grain: one row per (source, event_id) in raw_events_feedback landed in batch $batch_id or pending
-- parameters: $source (VARCHAR), $batch_id (BIGINT)
-- problem: NULL = usable; 'pending: ...' = its generation has not arrived yet (judged again next
-- run); anything else = quarantined with that reason. Only the generations these events name are
-- parsed, so a run with little new feedback does not re-read the whole history.
WITH fresh AS (
    SELECT f.*, md5(f.source || ':' || f.event_id) AS canonical_id
    FROM raw_events_feedback AS f
    WHERE f.source = $source
      AND (f.batch_id = $batch_id
           OR f.event_id IN (SELECT key FROM pending WHERE source = $source AND input = 'feedback'))
),
wanted AS (
    SELECT request_id AS id FROM fresh WHERE request_id IS NOT NULL
    UNION SELECT other_request_id FROM fresh WHERE other_request_id IS NOT NULL
),
gens AS MATERIALIZED (
    -- Each generation's turns are checked, and its messages hashed, once here (one pass), not once per
    -- feedback row naming it; only what the judgement reads is kept.
    SELECT request_id, model_version, response, prompt, messages_hash,
           coalesce(list_bool_and(list_transform(prompt, m ->
                  coalesce(m.role IN ('system', 'user', 'assistant'), false) AND m.content IS NOT NULL
                  AND NOT regexp_full_match(m.content, '[\s\p{Z}]*'))), false) AS turns_ok
    FROM (
        SELECT g.request_id, g.model_version, g.response, hash(g.messages) AS messages_hash,
               CASE WHEN json_valid(g.messages) AND json_type(g.messages) = 'ARRAY'
                    THEN from_json(g.messages, '[{"role": "VARCHAR", "content": "VARCHAR"}]') END AS prompt
        FROM raw_events_generations AS g
        WHERE g.source = $source AND g.request_id IN (SELECT id FROM wanted)
    )
),
joined AS (
    SELECT fresh.*,
           a.request_id AS a_found, a.prompt AS a_prompt, a.turns_ok AS a_turns_ok, a.response AS a_response,
           a.model_version AS a_model_version, a.messages_hash AS a_messages_hash,
           b.request_id AS b_found, b.response AS b_response, b.model_version AS b_model_version,
           b.messages_hash AS b_messages_hash
    FROM fresh
    LEFT JOIN gens AS a ON a.request_id = fresh.request_id
    LEFT JOIN gens AS b ON b.request_id = fresh.other_request_id
)
SELECT *,
    CASE
        WHEN kind IS NULL OR kind NOT IN ('thumb', 'comparison')
            THEN 'kind must be ''thumb'' or ''comparison'''
        WHEN request_id IS NULL THEN 'request_id is missing'
        WHEN kind = 'thumb' AND (value IS NULL OR value NOT IN ('up', 'down'))
            THEN 'thumb value must be ''up'' or ''down'''
        WHEN kind = 'comparison' AND other_request_id IS NULL THEN 'comparison has no other_request_id'
        WHEN kind = 'comparison' AND (value IS NULL OR value NOT IN ('a', 'b'))
            THEN 'comparison value must be ''a'' or ''b'' (ties carry no preference)'
        WHEN a_found IS NULL THEN 'pending: generation ' || request_id || ' not ingested yet'
        WHEN kind = 'comparison' AND b_found IS NULL
            THEN 'pending: generation ' || other_request_id || ' not ingested yet'
        WHEN a_prompt IS NULL OR len(a_prompt) = 0
            THEN 'messages is not a JSON list of {role, content} turns'
        WHEN NOT a_turns_ok THEN CASE
            -- coalesce: a turn without a role reads as NULL, which must fail the check, not skip it
            WHEN NOT coalesce(list_bool_and(list_transform(
                     a_prompt, m -> coalesce(m.role IN ('system', 'user', 'assistant'), false))), false)
                THEN 'a message turn has no role, or one other than system, user, assistant'
            WHEN NOT coalesce(list_bool_and(list_transform(a_prompt, m -> m.content IS NOT NULL)), false)
                THEN 'a message turn has no content'
            ELSE 'a message turn is blank (whitespace only)' END
        WHEN a_prompt[-1].role <> 'user' THEN 'messages must end with the user''s turn'
        WHEN a_response IS NULL OR regexp_full_match(a_response, '\s*') THEN 'response is empty'
        WHEN kind = 'comparison' AND (b_response IS NULL OR regexp_full_match(b_response, '\s*'))
            THEN 'response is empty'
        WHEN kind = 'comparison' AND a_messages_hash IS DISTINCT FROM b_messages_hash
            THEN 'compared generations answer different messages'
        WHEN kind = 'comparison' AND a_response = b_response THEN 'compared responses are identical'
    END AS problem
FROM joined
