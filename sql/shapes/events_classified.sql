-- purpose: judge every not-yet-canonical feedback event of one source: usable, pending, or broken
-- grain: one row per (source, event_id) in raw_events_feedback that is in neither unpaired, pairs
--        nor quarantine yet
-- parameters: $source (VARCHAR)
-- problem: NULL = usable; 'pending: ...' = its generation has not arrived yet (judged again next
-- run); anything else = quarantined with that reason.
WITH fresh AS (
    SELECT f.*, md5(f.source || ':' || f.event_id) AS canonical_id
    FROM raw_events_feedback AS f
    WHERE f.source = $source
      AND md5(f.source || ':' || f.event_id) NOT IN (
          SELECT event_id FROM unpaired WHERE source = $source
          UNION ALL SELECT event_id FROM pairs WHERE source = $source
          UNION ALL SELECT event_id FROM quarantine WHERE source = $source)
),
gens AS (
    SELECT g.*,
           CASE WHEN json_valid(g.messages) AND json_type(g.messages) = 'ARRAY'
                THEN from_json(g.messages, '[{"role": "VARCHAR", "content": "VARCHAR"}]') END AS prompt
    FROM raw_events_generations AS g
    WHERE g.source = $source
),
joined AS (
    SELECT fresh.*,
           a.request_id AS a_found, a.prompt AS a_prompt, a.response AS a_response,
           a.model_version AS a_model_version, a.messages AS a_messages,
           b.request_id AS b_found, b.response AS b_response, b.model_version AS b_model_version,
           b.messages AS b_messages
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
             OR NOT list_bool_and(list_transform(a_prompt, m -> m.role IN ('system', 'user', 'assistant')
                                                          AND m.content IS NOT NULL))
            THEN 'messages is not a JSON list of {role, content} turns'
        WHEN a_prompt[-1].role <> 'user' THEN 'messages must end with the user''s turn'
        WHEN a_response IS NULL OR trim(a_response) = '' THEN 'response is empty'
        WHEN kind = 'comparison' AND (b_response IS NULL OR trim(b_response) = '') THEN 'response is empty'
        WHEN kind = 'comparison' AND a_messages IS DISTINCT FROM b_messages
            THEN 'compared generations answer different messages'
        WHEN kind = 'comparison' AND a_response = b_response THEN 'compared responses are identical'
    END AS problem
FROM joined
