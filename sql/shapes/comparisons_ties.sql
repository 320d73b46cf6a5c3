-- purpose: usable `comparisons` votes that prefer neither answer -> canonical ties, as observed
-- grain: one row per usable raw_comparisons row whose winner is tie or both_bad
-- parameters: none (reads the temp table comparisons_classified)
-- A tie states no preference: it is never read as a pair, only counted (the data profile's n_ties, n_both_bad).
SELECT canonical_id AS event_id, source, ts,
       CASE WHEN user_id IS NOT NULL THEN user_id
            WHEN annotator IS NOT NULL THEN sha256('annotator:' || annotator) END AS user_id,
       CASE WHEN model_a IS NOT DISTINCT FROM model_b THEN model_a
            ELSE concat_ws(' vs ', model_a, model_b) END AS model_version,
       prompt_turns AS prompt, answer_a, answer_b, winner AS verdict, ts_observed
FROM comparisons_classified
WHERE problem IS NULL AND winner IN ('tie', 'both_bad')
