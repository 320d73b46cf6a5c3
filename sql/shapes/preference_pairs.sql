-- purpose: usable `preference` rows -> canonical pairs (prompt, chosen, rejected)
-- grain: one row per usable raw_preference row
-- parameters: none (reads the temp table preference_classified)
-- user_id: the user, else the annotator (the person whose judgement this is); both were hashed with
-- the installation's salt when they landed. The annotator is hashed once more with a prefix, so an
-- annotator and a user of the same name stay two people.
SELECT canonical_id AS event_id, source, ts,
       CASE WHEN user_id IS NOT NULL THEN user_id
            WHEN annotator IS NOT NULL THEN sha256('annotator:' || annotator) END AS user_id,
       model_version, prompt_turns AS prompt, chosen, rejected, ts_observed
FROM preference_classified
WHERE problem IS NULL
