-- purpose: broken `preference` rows -> quarantine rows with the reason and the landed content
-- grain: one row per broken raw_preference row
-- parameters: none (reads the temp table preference_classified)
SELECT canonical_id AS event_id, source, problem AS reason,
       to_json({'id': id, 'ts': ts, 'ts_observed': ts_observed, 'prompt': prompt, 'chosen': chosen,
                'rejected': rejected}) AS payload
FROM preference_classified
WHERE problem IS NOT NULL
