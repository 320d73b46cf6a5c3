-- purpose: judge every not-yet-canonical Langfuse score of one source: usable, pending, or broken
-- grain: one row per (source, score id) in raw_langfuse_scores that is in neither unpaired nor quarantine
-- parameters: $source (VARCHAR)
-- problem: NULL = usable; 'pending: ...' = its trace or observation has not arrived (judged again next
-- run); anything else = quarantined with that reason.
WITH fresh AS (
    SELECT s.*, md5(s.source || ':' || s.id) AS canonical_id
    FROM raw_langfuse_scores AS s
    WHERE s.source = $source
      AND md5(s.source || ':' || s.id) NOT IN (
          SELECT event_id FROM unpaired WHERE source = $source
          UNION ALL SELECT event_id FROM quarantine WHERE source = $source)
),
joined AS (
    SELECT fresh.*, t.id AS trace_found, o.id AS observation_found, t.user_id AS trace_user_id,
           CASE WHEN fresh.observation_id IS NULL THEN t.prompt ELSE o.prompt END AS target_prompt,
           CASE WHEN fresh.observation_id IS NULL THEN t.completion ELSE o.completion END AS completion,
           CASE WHEN fresh.observation_id IS NULL THEN t.target_problem ELSE o.target_problem END AS target_problem,
           coalesce(o.model_version, t.model_version) AS model_version
    FROM fresh
    LEFT JOIN raw_langfuse_traces AS t ON t.source = fresh.source AND t.id = fresh.trace_id
    LEFT JOIN raw_langfuse_observations AS o ON o.source = fresh.source AND o.id = fresh.observation_id
)
SELECT *, messages_turns(target_prompt) AS prompt,
    CASE
        WHEN prep_problem IS NOT NULL THEN prep_problem
        WHEN trace_found IS NULL THEN 'pending: trace ' || trace_id || ' not ingested yet'
        WHEN observation_id IS NOT NULL AND observation_found IS NULL
            THEN 'pending: observation ' || observation_id || ' not ingested yet'
        WHEN target_problem IS NOT NULL
            THEN CASE WHEN observation_id IS NULL THEN 'trace ' ELSE 'observation ' END || target_problem
    END AS problem
FROM joined
