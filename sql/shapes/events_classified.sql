-- purpose: judge the feedback events of one source landed in this batch, plus those still pending:
--          usable, pending, or broken
-- grain: one row per (source, event_id) in raw_events_feedback landed in batch $batch_id or pending
-- parameters: $source (VARCHAR), $batch_id (BIGINT)
-- problem: NULL = usable; 'pending: ...' = its generation has not arrived yet (judged again next
-- run); anything else = quarantined with that reason. Only the generations these events name are
-- parsed, so a run with little new feedback does not re-read the whole history.
-- The judgement reads only what each generation's checks leave (flags and hashes), never its texts:
-- joining millions of texts twice to the feedback spilled to disk and took most of an ingest
-- (BENCHMARKS.md, "Ingest"). events_unpaired.sql and events_pairs.sql join the texts of the usable
-- rows afterwards, once each.
-- `fresh` is read twice, NOT MATERIALIZED: each read then takes only the columns it needs, where a
-- materialised copy of every column of millions of rows took 2-3 s more at 10M rows. Its two parts are
-- disjoint: this batch's rows (found by batch, which skips stored row groups), and earlier rows still
-- pending (found from the pending keys); one OR of the two made every run test every stored row.
WITH fresh AS NOT MATERIALIZED (
    SELECT *, md5(source || ':' || event_id) AS canonical_id
    FROM (
        SELECT * FROM raw_events_feedback WHERE source = $source AND batch_id = $batch_id
        UNION ALL
        SELECT f.* FROM raw_events_feedback AS f
        SEMI JOIN (SELECT key FROM pending WHERE source = $source AND input = 'feedback') AS p ON f.event_id = p.key
        WHERE f.source = $source AND f.batch_id <> $batch_id
    )
),
wanted AS (
    SELECT DISTINCT id FROM (SELECT unnest([request_id, other_request_id]) AS id FROM fresh) WHERE id IS NOT NULL
),
gens AS (
    -- Each generation is checked, and its messages and response hashed, once here (one pass), not once
    -- per feedback row naming it.
    SELECT request_id, model_version, messages_hash, response_hash, response_empty,
        CASE
            WHEN prompt IS NULL OR len(prompt) = 0 THEN 'messages is not a JSON list of {role, content} turns'
            -- coalesce: a turn without a role reads as NULL, which must fail the check, not skip it
            WHEN NOT coalesce(list_bool_and(list_transform(
                     prompt, m -> coalesce(m.role IN ('system', 'user', 'assistant'), false))), false)
                THEN 'a message turn has no role, or one other than system, user, assistant'
            WHEN NOT coalesce(list_bool_and(list_transform(prompt, m -> m.content IS NOT NULL)), false)
                THEN 'a message turn has no content'
            WHEN NOT list_bool_and(list_transform(prompt, m -> NOT regexp_full_match(m.content, '[\s\p{Z}]*')))
                THEN 'a message turn is blank (whitespace only)'
            WHEN prompt[-1].role <> 'user' THEN 'messages must end with the user''s turn'
        END AS prompt_problem
    FROM (
        SELECT g.request_id, g.model_version, hash(g.messages) AS messages_hash, hash(g.response) AS response_hash,
               g.response IS NULL OR regexp_full_match(g.response, '\s*') AS response_empty,
               CASE WHEN json_valid(g.messages) AND json_type(g.messages) = 'ARRAY'
                    THEN messages_turns(g.messages) END AS prompt
        FROM raw_events_generations AS g
        WHERE g.source = $source AND g.request_id IN (SELECT id FROM wanted)
    )
),
joined AS (
    SELECT fresh.*,
           a.request_id AS a_found, a.prompt_problem AS a_prompt_problem, a.response_empty AS a_response_empty,
           a.model_version AS a_model_version, a.messages_hash AS a_messages_hash, a.response_hash AS a_response_hash,
           b.request_id AS b_found, b.response_empty AS b_response_empty, b.model_version AS b_model_version,
           b.messages_hash AS b_messages_hash, b.response_hash AS b_response_hash
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
        WHEN a_prompt_problem IS NOT NULL THEN a_prompt_problem
        WHEN a_response_empty THEN 'response is empty'
        WHEN kind = 'comparison' AND b_response_empty THEN 'response is empty'
        WHEN kind = 'comparison' AND a_messages_hash IS DISTINCT FROM b_messages_hash
            THEN 'compared generations answer different messages'
        WHEN kind = 'comparison' AND a_response_hash = b_response_hash THEN 'compared responses are identical'
    END AS problem
FROM joined
