-- purpose: broken Langfuse scores -> quarantine rows with the reason (pending ones are not broken)
-- grain: one row per broken score
-- parameters: none (reads the temp table langfuse_classified)
SELECT canonical_id AS event_id, source, problem AS reason,
       to_json({'id': id, 'trace_id': trace_id, 'observation_id': observation_id, 'name': name,
                'value': value_raw, 'data_type': data_type}) AS payload
FROM langfuse_classified
WHERE problem IS NOT NULL AND NOT starts_with(problem, 'pending:')
