-- purpose: comparisons as votes on an item: the same pair is the same item whichever answer won
-- grain: one row per row of `pairs_in` (prompt, chosen, rejected)
-- parameters: none
-- a_key/b_key hash the pair's answers in text order (a: the lesser text); positive: a won. The triad
-- mart reads them, so each text is hashed once.
SELECT prompt_key || ':' || a_key || ':' || b_key AS item_key, positive, user_id, prompt_key, a_key, b_key
FROM (
    SELECT md5(to_json(prompt)::VARCHAR) AS prompt_key, md5(least(chosen, rejected)) AS a_key,
           md5(greatest(chosen, rejected)) AS b_key, chosen = least(chosen, rejected) AS positive, user_id
    FROM pairs_in
)
