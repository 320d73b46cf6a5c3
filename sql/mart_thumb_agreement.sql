-- purpose: how often repeated thumbs on the same answer to the same prompt agree (label-noise evidence)
-- grain: one row for the whole table `unpaired_in` (prompt, completion, label), registered by the caller
-- parameters: none
WITH groups AS (
    SELECT md5(to_json(prompt)::VARCHAR) AS prompt_key, completion,
           count(*) AS n, count(*) FILTER (WHERE label) AS k
    FROM unpaired_in
    GROUP BY ALL
)
SELECT
    coalesce(sum(n) FILTER (WHERE n >= 2), 0)                       AS repeated_votes,
    count(*) FILTER (WHERE n >= 2)                                   AS repeated_groups,
    count(*) FILTER (WHERE n >= 2 AND k > 0 AND k < n)               AS contradictory_groups,
    coalesce(sum(k * (n - k)), 0)                                    AS disagreeing_vote_pairs,
    coalesce(sum(n * (n - 1) / 2), 0)                                AS vote_pairs
FROM groups
