-- purpose: pairs derived from ranks: every better-ranked answer of a group preferred over every
--          worse-ranked answer of it (rank 0 is best; equal ranks and equal texts state no preference)
-- grain: one row per (source, group_id, better-ranked answer, worse-ranked answer) of the view ranks_in
-- parameters: none (reads the view ranks_in: canonical ranks)
-- event_id: the id such a pair had when rankings were stored as pairs, so it stays stable across layouts
-- ts: the later of the two answers' times; user_id: NULL (a ranking merges many labellers' judgements)
SELECT md5(x.source || ':pair:' || x.answer_id || '>' || y.answer_id) AS event_id, x.source,
       greatest(x.ts, y.ts) AS ts, NULL::VARCHAR AS user_id,
       CASE WHEN x.model_version IS NOT DISTINCT FROM y.model_version THEN x.model_version
            ELSE concat_ws(' vs ', x.model_version, y.model_version) END AS model_version,
       x.prompt, x.completion AS chosen, y.completion AS rejected,
       x.ts_observed AND y.ts_observed AS ts_observed, 'ranks' AS derived_from
FROM ranks_in AS x
JOIN ranks_in AS y
  ON x.source = y.source AND x.group_id = y.group_id AND x.rank < y.rank AND x.completion <> y.completion
