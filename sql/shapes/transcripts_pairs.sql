-- purpose: usable `transcripts` rows -> canonical pairs (shared history, chosen answer, rejected answer)
-- grain: one row per usable raw_transcripts row
-- parameters: none (reads the temp table transcripts_classified)
SELECT canonical_id AS event_id, source, ts, user_id, model_version,
       prompt_turns AS prompt, chosen, rejected, ts_observed
FROM transcripts_classified
WHERE problem IS NULL
