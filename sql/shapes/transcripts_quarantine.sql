-- purpose: `transcripts` rows that cannot be split -> quarantine with the reason and both dialogues
-- grain: one row per broken raw_transcripts row
-- parameters: none (reads the temp table transcripts_classified)
SELECT canonical_id AS event_id, source, problem AS reason,
       to_json({'id': id, 'ts': ts, 'ts_observed': ts_observed, 'chosen': chosen_raw,
                'rejected': rejected_raw}) AS payload
FROM transcripts_classified
WHERE problem IS NOT NULL
