-- purpose: rated rows that cannot be used (no score, not a number, out of range) -> quarantine with the
--          reason and the row
-- grain: one row per unusable raw_ratings row
-- parameters: none (reads the temp table ratings_classified)
SELECT c.event_id, c.source, c.problem AS reason,
       to_json({'id': r.id, 'ts': r.ts, 'prompt': r.prompt, 'completion': r.completion, 'score': r.score_raw}) AS payload
FROM ratings_classified AS c
JOIN raw_ratings AS r ON r.source = c.source AND r.id = c.a_id
WHERE c.kind = 'row'
