-- purpose: broken `unpaired` rows -> quarantine rows with the reason and the landed content
-- grain: one row per broken raw_unpaired row
-- parameters: none (reads the temp table unpaired_classified)
SELECT canonical_id AS event_id, source, problem AS reason,
       to_json({'id': id, 'ts': ts, 'ts_observed': ts_observed, 'prompt': prompt, 'completion': completion,
                'label': label_raw}) AS payload
FROM unpaired_classified
WHERE problem IS NOT NULL
