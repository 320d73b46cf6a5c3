-- purpose: broken feedback events -> quarantine rows with the reason (pending ones are not broken)
-- grain: one row per broken feedback event
-- parameters: none (reads the temp table events_classified built from events_classified.sql)
SELECT canonical_id AS event_id, source, problem AS reason,
       to_json({'event_id': event_id, 'request_id': request_id, 'ts': ts, 'kind': kind, 'value': value,
                'other_request_id': other_request_id}) AS payload
FROM events_classified
WHERE problem IS NOT NULL AND NOT starts_with(problem, 'pending:')
