-- purpose: broken `corrections` rows -> quarantine rows with the reason and the landed content
-- grain: one row per broken correction
-- parameters: none (reads the temp table corrections_classified)
SELECT canonical_id AS event_id, source, problem AS reason,
       to_json({'id': id, 'ts': ts, 'ts_observed': ts_observed, 'prompt': prompt, 'corrected': chosen,
                'original': rejected}) AS payload
FROM corrections_classified
WHERE problem IS NOT NULL
