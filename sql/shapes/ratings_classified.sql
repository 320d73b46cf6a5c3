-- purpose: one source's rated answers -> thumbs (by threshold) and rated answers kept with their score
--          (pairs of answers a margin apart are derived from them when a snapshot is read), and a
--          reason for every row that cannot be used
-- grain: one row per outcome: kind 'thumb' (a rated row past a threshold), 'score' (every usable rated
--        row, as observed) or 'row' (an unusable row, with its reason in `problem`)
-- parameters: $source (VARCHAR), $up_threshold, $down_threshold, $pair_margin (DOUBLE)
WITH rated AS (
    SELECT r.*, messages_turns(r.prompt) AS prompt_turns
    FROM raw_ratings AS r
    WHERE r.source = $source AND r.prep_problem IS NULL
),
thumb_rows AS (
    SELECT 'thumb' AS kind, md5(source || ':' || id) AS event_id, ts, user_id, model_version,
           prompt_turns AS prompt, completion, score >= $up_threshold AS label, id AS a_id, ts_observed
    FROM rated
    WHERE score >= $up_threshold OR score <= $down_threshold
),
score_rows AS (
    -- group_id: the prompt as landed (its answers are compared with each other)
    SELECT 'score' AS kind, md5(source || ':score:' || id) AS event_id, ts, user_id, model_version,
           prompt_turns AS prompt, completion, score, $pair_margin::DOUBLE AS pair_margin, md5(prompt) AS group_id,
           id AS a_id, ts_observed
    FROM rated
),
row_rows AS (
    SELECT 'row' AS kind, md5(r.source || ':' || r.id) AS event_id, r.ts, NULL::VARCHAR AS user_id,
           r.model_version, NULL AS prompt, r.completion, r.id AS a_id, r.prep_problem AS problem
    FROM raw_ratings AS r
    WHERE r.source = $source AND r.prep_problem IS NOT NULL
)
SELECT *, $source AS source, NULL::VARCHAR AS problem FROM thumb_rows
UNION ALL BY NAME SELECT *, $source AS source, NULL::VARCHAR AS problem FROM score_rows
UNION ALL BY NAME SELECT *, $source AS source FROM row_rows
