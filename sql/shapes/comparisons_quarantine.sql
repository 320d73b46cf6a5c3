-- purpose: broken `comparisons` votes -> quarantine rows with the reason and the landed content
-- grain: one row per broken raw_comparisons row
-- parameters: none (reads the temp table comparisons_classified)
SELECT canonical_id AS event_id, source, problem AS reason,
       to_json({'id': id, 'ts': ts, 'ts_observed': ts_observed, 'prompt': prompt, 'answer_a': answer_a,
                'answer_b': answer_b, 'winner': winner_raw}) AS payload
FROM comparisons_classified
WHERE problem IS NOT NULL
