-- purpose: one source's rated answers -> thumbs (by threshold), pairs (answers to one prompt whose
--          scores differ by the margin), and a reason for every row that gives neither
-- grain: one row per outcome: kind 'thumb' (a rated row past a threshold), 'pair' (two rated rows of
--        one prompt, higher score first) or 'row' (an unused row, with its reason in `problem`)
-- parameters: $source (VARCHAR), $up_threshold, $down_threshold, $pair_margin (DOUBLE)
WITH rated AS (
    SELECT r.*, from_json(r.prompt, '[{"role": "VARCHAR", "content": "VARCHAR"}]') AS prompt_turns
    FROM raw_ratings AS r
    WHERE r.source = $source AND r.prep_problem IS NULL
),
thumb_rows AS (
    SELECT 'thumb' AS kind, md5(source || ':' || id) AS event_id, ts, user_id, model_version,
           prompt_turns AS prompt, completion, score >= $up_threshold AS label,
           NULL::VARCHAR AS chosen, NULL::VARCHAR AS rejected, id AS a_id, NULL::VARCHAR AS b_id, ts_observed
    FROM rated
    WHERE score >= $up_threshold OR score <= $down_threshold
),
pair_rows AS (
    SELECT 'pair' AS kind, md5(hi.source || ':pair:' || hi.id || '>' || lo.id) AS event_id,
           greatest(hi.ts, lo.ts) AS ts,
           CASE WHEN hi.user_id IS NOT DISTINCT FROM lo.user_id THEN hi.user_id END AS user_id,
           CASE WHEN hi.model_version IS NOT DISTINCT FROM lo.model_version THEN hi.model_version
                ELSE concat_ws(' vs ', hi.model_version, lo.model_version) END AS model_version,
           hi.prompt_turns AS prompt, NULL::VARCHAR AS completion, NULL::BOOLEAN AS label,
           hi.completion AS chosen, lo.completion AS rejected, hi.id AS a_id, lo.id AS b_id,
           hi.ts_observed AND lo.ts_observed AS ts_observed
    FROM rated AS hi
    JOIN rated AS lo
      ON hi.prompt = lo.prompt AND hi.score - lo.score >= $pair_margin AND hi.completion <> lo.completion
),
used AS (
    SELECT a_id AS id FROM thumb_rows
    UNION SELECT a_id FROM pair_rows
    UNION SELECT b_id FROM pair_rows
),
row_rows AS (
    SELECT 'row' AS kind, md5(r.source || ':' || r.id) AS event_id, r.ts, NULL::VARCHAR AS user_id,
           r.model_version, NULL AS prompt, r.completion, NULL::BOOLEAN AS label,
           NULL::VARCHAR AS chosen, NULL::VARCHAR AS rejected, r.id AS a_id, NULL::VARCHAR AS b_id,
           coalesce(r.prep_problem,
                    'score ' || r.score || ' is between the thresholds and no other answer to the prompt differs '
                    || 'by the pair margin') AS problem
    FROM raw_ratings AS r
    WHERE r.source = $source AND r.id NOT IN (SELECT id FROM used)
)
SELECT *, $source AS source, NULL::VARCHAR AS problem FROM thumb_rows
UNION ALL BY NAME SELECT *, $source AS source, NULL::VARCHAR AS problem FROM pair_rows
UNION ALL BY NAME SELECT *, $source AS source FROM row_rows
