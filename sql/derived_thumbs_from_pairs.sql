-- purpose: thumbs derived from pairs: a pair's chosen answer as up, its rejected answer as down
-- grain: two rows per row of `pairs_in`
-- parameters: none (reads the view pairs_in: canonical pairs)
SELECT md5('derived:pair:' || event_id || ':chosen') AS event_id, source, ts, user_id, model_version,
       prompt, chosen AS completion, true AS label, ts_observed, 'pairs' AS derived_from
FROM pairs_in
UNION ALL
SELECT md5('derived:pair:' || event_id || ':rejected'), source, ts, user_id, model_version,
       prompt, rejected, false, ts_observed, 'pairs'
FROM pairs_in
