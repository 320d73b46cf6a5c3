-- purpose: usable Langfuse scores -> canonical thumbs on the rated trace's or observation's answer
-- grain: one row per usable score
-- parameters: none (reads the temp table langfuse_classified)
-- user_id: the score's author, else the trace's user (end-user feedback carries none of its own)
SELECT canonical_id AS event_id, source, ts, coalesce(author_user_id, trace_user_id) AS user_id,
       model_version, prompt, completion, label, ts_observed
FROM langfuse_classified
WHERE problem IS NULL
