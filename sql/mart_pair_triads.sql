-- purpose: triads of answers to one prompt whose three pairs were all compared, and whether the
--          majority verdicts form a cycle (a > b > c > a): cycles cannot come from one true order
-- grain: one row per prompt with at least one fully compared triad (triads, cyclic triads)
-- parameters: none; reads votes_in (sql/stg_pair_votes.sql: answers as hashes, a before b in text order)
WITH votes AS (
    SELECT prompt_key, a_key AS a, b_key AS b, positive AS a_wins
    FROM votes_in
    WHERE a_key <> b_key
),
edges AS (  -- one majority verdict per compared pair; ties carry no direction and are dropped
    SELECT prompt_key, a, b, count(*) FILTER (WHERE a_wins) > count(*) FILTER (WHERE NOT a_wins) AS a_wins
    FROM votes
    GROUP BY prompt_key, a, b
    HAVING count(*) FILTER (WHERE a_wins) <> count(*) FILTER (WHERE NOT a_wins)
)
SELECT e1.prompt_key,
       count(*) AS triads,
       -- x < y < z: a cycle is x>y, y>z, z>x or its reverse
       count(*) FILTER (WHERE (e1.a_wins AND e2.a_wins AND NOT e3.a_wins)
                           OR (NOT e1.a_wins AND NOT e2.a_wins AND e3.a_wins)) AS cyclic
FROM edges e1
JOIN edges e2 ON e2.prompt_key = e1.prompt_key AND e2.a = e1.b
JOIN edges e3 ON e3.prompt_key = e1.prompt_key AND e3.a = e1.a AND e3.b = e2.b
GROUP BY e1.prompt_key
ORDER BY e1.prompt_key
