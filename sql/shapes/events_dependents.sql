-- purpose: feedback events that rest on generations a newer version has just replaced: what they
--          became (canonical rows, quarantine) is dropped and they are judged again in this run
-- grain: one row per feedback event (its key in raw_events_feedback) naming a replaced generation
-- parameters: $source (VARCHAR); reads the temp table replaced_keys (key VARCHAR) of replaced request ids
SELECT event_id AS key
FROM raw_events_feedback
WHERE source = $source
  AND (request_id IN (SELECT key FROM replaced_keys) OR other_request_id IN (SELECT key FROM replaced_keys))
