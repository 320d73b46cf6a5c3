-- purpose: the floor `alignloop bench ingest` is measured against: the same normalisation as the
--          `events` shape in one plain script (no keys, no cursors, no quarantine bookkeeping, no
--          transaction), reading the warehouse attached as `wh`
-- grain: raw_unpaired: one row per usable thumb; raw_pairs: one row per usable comparison
-- parameters: $salt (VARCHAR): the user-id salt; __SCRUB_MESSAGES__ / __SCRUB_RESPONSE__: the PII
--             scrubbing expressions of pipeline/pii.py for those columns
CREATE OR REPLACE TABLE raw_canonical AS
WITH g AS (
    SELECT request_id, model_version, __SCRUB_MESSAGES__ AS messages, __SCRUB_RESPONSE__ AS response
    FROM wh.generations
),
gp AS (
    SELECT *, CASE WHEN json_valid(messages) AND json_type(messages) = 'ARRAY'
                   THEN from_json(messages, '[{"role": "VARCHAR", "content": "VARCHAR"}]') END AS prompt
    FROM g
),
j AS (
    SELECT md5('prod:' || f.event_id) AS event_id, f.ts, sha256($salt || f.user_id) AS user_id, f.kind, f.value,
           a.prompt, a.messages AS a_messages, a.response AS a_response, a.model_version AS a_mv,
           b.messages AS b_messages, b.response AS b_response, b.model_version AS b_mv, a.request_id AS a_id,
           b.request_id AS b_id, f.other_request_id
    FROM wh.feedback_events AS f
    LEFT JOIN gp AS a ON a.request_id = f.request_id
    LEFT JOIN gp AS b ON b.request_id = f.other_request_id
),
ok AS (
    SELECT * FROM j
    WHERE a_id IS NOT NULL AND prompt IS NOT NULL AND len(prompt) > 0 AND prompt[-1].role = 'user'
      AND ((kind = 'thumb' AND value IN ('up', 'down'))
           OR (kind = 'comparison' AND value IN ('a', 'b') AND b_id IS NOT NULL
               AND a_messages = b_messages AND a_response <> b_response))
),
canonical AS (
    SELECT event_id, ts, user_id, prompt, kind,
           CASE WHEN kind = 'thumb' THEN a_response END AS completion,
           CASE WHEN kind = 'thumb' THEN value = 'up' END AS label,
           CASE WHEN kind = 'comparison' THEN CASE WHEN value = 'a' THEN a_response ELSE b_response END END AS chosen,
           CASE WHEN kind = 'comparison' THEN CASE WHEN value = 'a' THEN b_response ELSE a_response END END AS rejected
    FROM ok
)
SELECT * EXCLUDE (dup_key)
FROM (
    SELECT *, md5(coalesce(user_id, '') || kind
                  || lower(regexp_replace(trim(to_json(prompt)::VARCHAR), '\s+', ' ', 'g')) || '|'
                  || lower(regexp_replace(trim(coalesce(completion, chosen)), '\s+', ' ', 'g')) || '|'
                  || coalesce(label::VARCHAR, lower(regexp_replace(trim(rejected), '\s+', ' ', 'g')))) AS dup_key
    FROM canonical
)
QUALIFY row_number() OVER (PARTITION BY dup_key ORDER BY ts, event_id) = 1
