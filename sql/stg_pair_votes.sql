-- purpose: comparisons as votes on an item: the same pair is the same item whichever answer won
-- grain: one row per row of `pairs_in` (prompt, chosen, rejected)
-- parameters: none
SELECT md5(to_json(prompt)::VARCHAR) || ':' || md5(least(chosen, rejected)) || ':'
           || md5(greatest(chosen, rejected)) AS item_key,
       chosen = least(chosen, rejected) AS positive,
       user_id
FROM pairs_in
