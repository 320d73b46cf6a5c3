-- purpose: synthetic generations for `alignloop bench ingest` (appended to table `generations`)
-- grain: one row per request id r<i>, i in [$lo, $hi)
-- parameters: $lo, $hi (BIGINT): index range; $n_prompts (BIGINT): distinct prompts (prompt = i % n_prompts);
--             $step_ms (BIGINT): milliseconds between consecutive generations; $users (BIGINT)
-- One prompt in 50 carries an e-mail address, one a phone number, one an IP address: the PII scrubber
-- has real work to do. Answers are 70-300 characters.
INSERT INTO generations
SELECT 'r' || i AS request_id,
       TIMESTAMP '2026-09-01' + to_milliseconds(i * $step_ms) AS ts,
       'user' || (i * 31 % $users) || '@example.com' AS user_id,
       'v' || (1 + i % 3) AS model_version,
       to_json([{'role': 'user', 'content': CASE p % 50
            WHEN 0 THEN 'Please write to person' || p || '@example.com about question ' || p || '?'
            WHEN 1 THEN 'Call me on +1 555-' || lpad((p % 1000)::VARCHAR, 3, '0') || '-' || lpad((p % 10000)::VARCHAR, 4, '0') || ' about question ' || p || '?'
            WHEN 2 THEN 'Host 10.0.' || (p % 250) || '.' || (1 + p % 200) || ' fails, question ' || p || '?'
            ELSE 'Question ' || p || ': how do I make step ' || (p % 97) || ' of my plan work?' END}])::VARCHAR
           AS messages,
       'Answer ' || i || ': ' || repeat('here is what to do next. ', 2 + i % 10) AS response
FROM (SELECT i, i % $n_prompts AS p FROM range($lo, $hi) AS t(i))
