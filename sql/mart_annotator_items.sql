-- purpose: agreement between different people on the same item: each known user's vote on an item
--          (their majority when they voted more than once, ties dropped), for items two or more users judged
-- grain: one row per item judged by >= 2 distinct known users (n users, k of them positive)
-- parameters: none
WITH per_user AS (
    SELECT item_key, user_id,
           count(*) FILTER (WHERE positive) AS ups, count(*) FILTER (WHERE NOT positive) AS downs
    FROM votes_in
    WHERE user_id IS NOT NULL
    GROUP BY item_key, user_id
    HAVING count(*) FILTER (WHERE positive) <> count(*) FILTER (WHERE NOT positive)
)
SELECT item_key, count(*) AS n, count(*) FILTER (WHERE ups > downs) AS k
FROM per_user
GROUP BY item_key
HAVING count(*) >= 2
ORDER BY item_key
