-- purpose: usable decisive `comparisons` votes -> canonical pairs (the winner's answer chosen)
-- grain: one row per usable raw_comparisons row whose winner is a or b
-- parameters: none (reads the temp table comparisons_classified)
-- user_id: the user, else the annotator (hashed once more with a prefix, as the preference shape does)
-- model_version: the chosen answer's model, or 'chosen vs rejected' when the two differ
SELECT canonical_id AS event_id, source, ts,
       CASE WHEN user_id IS NOT NULL THEN user_id
            WHEN annotator IS NOT NULL THEN sha256('annotator:' || annotator) END AS user_id,
       CASE WHEN model_a IS NOT DISTINCT FROM model_b THEN model_a
            WHEN winner = 'a' THEN concat_ws(' vs ', model_a, model_b)
            ELSE concat_ws(' vs ', model_b, model_a) END AS model_version,
       prompt_turns AS prompt,
       CASE winner WHEN 'a' THEN answer_a ELSE answer_b END AS chosen,
       CASE winner WHEN 'a' THEN answer_b ELSE answer_a END AS rejected,
       ts_observed
FROM comparisons_classified
WHERE problem IS NULL AND winner IN ('a', 'b')
