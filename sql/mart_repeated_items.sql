-- purpose: items judged more than once, with how many judgements and how many were positive: the
--          per-item evidence for label noise that the noise estimate bootstraps over
-- grain: one row per item of `votes_in` (item_key VARCHAR, positive BOOLEAN, user_id VARCHAR) with n >= 2
-- parameters: none
SELECT item_key, count(*) AS n, count(*) FILTER (WHERE positive) AS k
FROM votes_in
GROUP BY item_key
HAVING count(*) >= 2
ORDER BY item_key
