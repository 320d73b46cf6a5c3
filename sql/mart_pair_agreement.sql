-- purpose: how often repeated judgements of the same pair agree (the evidence for label noise)
-- grain: one row for the whole table `pairs_in` (prompt, chosen, rejected), registered by the caller
-- parameters: none
-- A pair is the same pair whichever answer won: key = (prompt, least(a, b), greatest(a, b)).
-- k of n votes prefer the first answer; k*(n-k) of the n*(n-1)/2 vote pairs disagree.
WITH groups AS (
    SELECT md5(to_json(prompt)::VARCHAR) AS prompt_key, least(chosen, rejected) AS first_answer,
           count(*) AS n, count(*) FILTER (WHERE chosen = least(chosen, rejected)) AS k
    FROM pairs_in
    GROUP BY ALL
)
SELECT
    coalesce(sum(n) FILTER (WHERE n >= 2), 0)                       AS repeated_votes,
    count(*) FILTER (WHERE n >= 2)                                   AS repeated_groups,
    count(*) FILTER (WHERE n >= 2 AND k > 0 AND k < n)               AS contradictory_groups,
    coalesce(sum(k * (n - k)), 0)                                    AS disagreeing_vote_pairs,
    coalesce(sum(n * (n - 1) / 2), 0)                                AS vote_pairs
FROM groups
