-- purpose: pairs derived from thumbs: every up-answer to a prompt preferred over every down-answer to it
-- grain: one row per (prompt, up-answer, down-answer) of the view answer_labels
-- parameters: none (reads the view answer_labels built from derived_answer_labels.sql)
SELECT md5('derived:thumbs:' || up.event_ids || '>' || down.event_ids) AS event_id, up.source,
       greatest(up.ts, down.ts) AS ts, NULL::VARCHAR AS user_id,
       CASE WHEN up.model_version IS NOT DISTINCT FROM down.model_version THEN up.model_version
            ELSE concat_ws(' vs ', up.model_version, down.model_version) END AS model_version,
       up.prompt, up.completion AS chosen, down.completion AS rejected,
       up.ts_observed AND down.ts_observed AS ts_observed, 'thumbs' AS derived_from
FROM answer_labels AS up
JOIN answer_labels AS down ON up.prompt_key = down.prompt_key AND up.label AND NOT down.label
