-- purpose: usable `corrections` rows -> canonical pairs (the corrected answer chosen over the original)
-- grain: one row per usable correction (landed in raw_preference under its source)
-- parameters: none (reads the temp table corrections_classified, built by preference_classified.sql)
-- user_id: the hashed editor
SELECT canonical_id AS event_id, source, ts, user_id, model_version,
       prompt_turns AS prompt, chosen, rejected, ts_observed
FROM corrections_classified
WHERE problem IS NULL
