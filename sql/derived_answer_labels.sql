-- purpose: each thumbed answer's majority label, the input of pairs derived from thumbs
-- grain: one row per (prompt, completion) of `unpaired_in`
-- parameters: none (reads the view unpaired_in: canonical unpaired rows)
-- label: true = more ups than downs, false = more downs, NULL = a tie (it gives no derived pair)
SELECT md5(to_json(prompt)::VARCHAR) AS prompt_key, any_value(prompt) AS prompt, completion,
       count(*) FILTER (WHERE label) AS ups, count(*) FILTER (WHERE NOT label) AS downs,
       CASE WHEN count(*) FILTER (WHERE label) > count(*) FILTER (WHERE NOT label) THEN true
            WHEN count(*) FILTER (WHERE label) < count(*) FILTER (WHERE NOT label) THEN false END AS label,
       max(ts) AS ts, coalesce(bool_and(ts_observed), false) AS ts_observed,
       string_agg(DISTINCT model_version, ' + ') AS model_version,
       min(source) AS source, string_agg(event_id, ',' ORDER BY event_id) AS event_ids
FROM unpaired_in
GROUP BY 1, 3
