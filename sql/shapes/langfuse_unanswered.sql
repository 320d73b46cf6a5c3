-- purpose: Langfuse traces of one source that no score names (yet): they wait for one, and are
--          quarantined after ingest.pending_timeout ("trace without score after N days")
-- grain: one row per (source, trace id) of raw_langfuse_traces without a row in raw_langfuse_scores
-- parameters: $source (VARCHAR)
-- A score on one of the trace's observations names the trace too. A trace that has a score is
-- accounted for by that score (a thumb, or quarantine with the score's own reason).
SELECT 'traces' AS input, t.id AS key, md5(t.source || ':no-score:' || t.id) AS canonical_id,
       'trace without score' AS waiting_for, t.ts,
       to_json({'id': t.id, 'ts': t.ts, 'user_id': t.user_id, 'version': t.model_version,
                'input': t.input_raw, 'output': t.output_raw}) AS payload
FROM raw_langfuse_traces AS t
WHERE t.source = $source
  AND t.id NOT IN (SELECT trace_id FROM raw_langfuse_scores WHERE source = $source AND trace_id IS NOT NULL)
