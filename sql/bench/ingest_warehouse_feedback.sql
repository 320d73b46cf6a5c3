-- purpose: synthetic feedback events for `alignloop bench ingest` (appended to table `feedback_events`)
-- grain: one row per event id f<j>, j in [$lo, $hi)
-- parameters: $lo, $hi (BIGINT): index range; $gen_lo, $gen_hi (BIGINT): generations rated;
--             $n_prompts, $step_ms, $users (BIGINT): as for the generations
-- 55 % thumbs, 45 % comparisons of two answers to one prompt (r<a> and r<a +- n_prompts>); one event
-- in 200 has an invalid value; one in 250 repeats the event before it (a double click).
INSERT INTO feedback_events
SELECT 'f' || j AS event_id,
       'r' || a AS request_id,
       TIMESTAMP '2026-09-01' + to_milliseconds(a * $step_ms + 1000 + (j % 3600) * 1000) AS ts,
       'user' || (base * 17 % $users) || '@example.com' AS user_id,
       CASE WHEN base % 20 < 11 THEN 'thumb' ELSE 'comparison' END AS kind,
       CASE WHEN base % 200 = 3 THEN 'meh'
            WHEN base % 20 < 11 THEN CASE WHEN hash(base) % 100 < 60 THEN 'up' ELSE 'down' END
            ELSE CASE WHEN hash(base) % 2 = 0 THEN 'a' ELSE 'b' END END AS value,
       CASE WHEN base % 20 >= 11 THEN 'r' || CASE WHEN a >= $n_prompts THEN a - $n_prompts ELSE a + $n_prompts END END
           AS other_request_id
FROM (
    SELECT j, base, $gen_lo + (base * 7919) % ($gen_hi - $gen_lo) AS a
    FROM (SELECT j, CASE WHEN j % 250 = 7 THEN j - 1 ELSE j END AS base FROM range($lo, $hi) AS t(j))
)
