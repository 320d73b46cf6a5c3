-- purpose: how often repeated judgements of the same item agree (the evidence for label noise)
-- grain: one row for the whole of `votes_in` (item_key VARCHAR, positive BOOLEAN), one row per vote,
--        built by stg_pair_votes.sql or stg_thumb_votes.sql
-- parameters: none
-- k of an item's n votes are positive; k*(n-k) of its n*(n-1)/2 vote pairs disagree.
WITH items AS (
    SELECT item_key, count(*) AS n, count(*) FILTER (WHERE positive) AS k
    FROM votes_in
    GROUP BY item_key
)
SELECT
    coalesce(sum(n) FILTER (WHERE n >= 2), 0)                       AS repeated_votes,
    count(*) FILTER (WHERE n >= 2)                                   AS repeated_groups,
    count(*) FILTER (WHERE n >= 2 AND k > 0 AND k < n)               AS contradictory_groups,
    coalesce(sum(k * (n - k)), 0)                                    AS disagreeing_vote_pairs,
    coalesce(sum(n * (n - 1) / 2), 0)                                AS vote_pairs
FROM items
