-- purpose: usable `unpaired` rows -> canonical unpaired rows (prompt, completion, label)
-- grain: one row per usable raw_unpaired row
-- parameters: none (reads the temp table unpaired_classified)
SELECT canonical_id AS event_id, source, ts, user_id, model_version,
       prompt_turns AS prompt, completion, label, ts_observed
FROM unpaired_classified
WHERE problem IS NULL
