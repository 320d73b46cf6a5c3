-- purpose: walk every thread of one source's message trees: ranked sibling replies -> ranks (pairs are
--          derived from them when a snapshot is read), net emoji votes -> thumbs, and every message
--          that ends in neither (nor in a used thread) -> a reason
-- grain: one row per outcome: kind 'rank' (a ranked reply with a differently ranked sibling of another
--        text), 'thumb' (reply with a net vote) or 'message' (an unused message, with its reason in `problem`)
-- parameters: $source (VARCHAR)
WITH RECURSIVE msgs AS (
    SELECT * FROM raw_message_trees WHERE source = $source
),
paths AS (   -- each message reachable from a root: the turns and ids from the root down to it
    SELECT message_id, [{'role': role, 'content': text}] AS turns, [message_id] AS ids,
           prep_problem IS NOT NULL AS broken, 1 AS depth
    FROM msgs WHERE parent_id IS NULL
    UNION ALL
    SELECT m.message_id, list_append(p.turns, {'role': m.role, 'content': m.text}), list_append(p.ids, m.message_id),
           p.broken OR m.prep_problem IS NOT NULL, p.depth + 1
    FROM msgs AS m JOIN paths AS p ON m.parent_id = p.message_id
    WHERE p.depth < 10000
),
answers AS (  -- usable assistant replies to a usable prompter message
    SELECT a.*, pp.turns AS prompt, pp.ids AS context_ids
    FROM msgs AS a
    JOIN paths AS pp ON pp.message_id = a.parent_id
    JOIN msgs AS p ON p.message_id = a.parent_id
    WHERE a.role = 'assistant' AND a.prep_problem IS NULL AND NOT pp.broken AND p.role = 'user'
),
compared AS (  -- every better-ranked vs worse-ranked sibling (the pairs conversions.pairs_from_ranks derives)
    SELECT x.message_id AS better, y.message_id AS worse
    FROM answers AS x JOIN answers AS y
      ON x.parent_id = y.parent_id AND x.rank < y.rank AND x.text <> y.text
),
rank_rows AS (  -- a ranked reply is stored once, as observed, when its rank states a comparison
    SELECT 'rank' AS kind, md5($source || ':rank:' || message_id) AS event_id, ts, prompt,
           NULL::VARCHAR AS chosen, NULL::VARCHAR AS rejected, text AS completion, NULL::BOOLEAN AS label,
           model_name AS model_version, context_ids, message_id AS a_id, NULL::VARCHAR AS b_id,
           rank, parent_id AS group_id, ts_observed
    FROM answers
    WHERE message_id IN (SELECT better FROM compared UNION SELECT worse FROM compared)
),
thumb_rows AS (
    SELECT 'thumb' AS kind, md5($source || ':thumb:' || message_id) AS event_id, ts, prompt,
           NULL::VARCHAR AS chosen, NULL::VARCHAR AS rejected, text AS completion,
           votes_up > votes_down AS label, model_name AS model_version, context_ids,
           message_id AS a_id, NULL::VARCHAR AS b_id, ts_observed
    FROM answers
    WHERE votes_up <> votes_down
),
used AS (
    SELECT DISTINCT id FROM (
        SELECT unnest(list_append(context_ids, a_id)) AS id FROM rank_rows
        UNION ALL SELECT unnest(list_append(context_ids, a_id)) FROM thumb_rows)
    WHERE id IS NOT NULL
),
message_rows AS (
    SELECT 'message' AS kind, md5($source || ':' || m.message_id) AS event_id, m.ts,
           NULL AS prompt, NULL::VARCHAR AS chosen, NULL::VARCHAR AS rejected, m.text AS completion,
           NULL::BOOLEAN AS label, m.model_name AS model_version, NULL::VARCHAR[] AS context_ids,
           m.message_id AS a_id, NULL::VARCHAR AS b_id,
           CASE
               WHEN m.prep_problem IS NOT NULL THEN m.prep_problem
               WHEN p.message_id IS NULL THEN 'no path to a root message: parent ' || coalesce(m.parent_id, '?')
                                              || ' or one of its ancestors is not in the source'
               WHEN p.broken THEN 'an earlier message in its thread cannot be used'
               WHEN m.role = 'assistant' AND parent.role IS DISTINCT FROM 'user'
                   THEN 'assistant reply does not answer a prompter message'
               WHEN m.role = 'assistant'
                   THEN 'no preference signal: no differently ranked sibling and no net "+1"/"-1" vote'
               ELSE 'no reply below it carries a rank or a net vote'
           END AS problem
    FROM msgs AS m
    LEFT JOIN paths AS p ON p.message_id = m.message_id
    LEFT JOIN msgs AS parent ON parent.message_id = m.parent_id
    WHERE m.message_id NOT IN (SELECT id FROM used)
)
SELECT *, $source AS source, NULL::VARCHAR AS problem FROM rank_rows
UNION ALL BY NAME SELECT *, $source AS source, NULL::VARCHAR AS problem FROM thumb_rows
UNION ALL BY NAME SELECT *, $source AS source FROM message_rows
