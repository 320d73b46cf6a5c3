-- purpose: pairs derived from ranks: every better-ranked answer of a group preferred over every
--          worse-ranked answer of it (rank 0 is best; equal ranks and equal texts state no preference),
--          and every rated answer preferred over each answer of its group rated at least the margin lower
-- grain: one row per (source, group_id, preferred answer, other answer) of the view ranks_in
-- parameters: none (reads the view ranks_in: canonical ranks; rated answers carry a score, not a rank)
-- event_id: the id such a pair had when rankings and ratings were stored as pairs, so it stays stable
-- ts: the later of the two answers' times; user_id: the rater when one person judged both, else NULL
--     (a ranking merges many labellers' judgements: its rows carry none)
-- margin: the larger of the two rows' (each row keeps the margin its source was loaded with)
SELECT md5(x.source || ':pair:' || x.answer_id || '>' || y.answer_id) AS event_id, x.source,
       greatest(x.ts, y.ts) AS ts,
       CASE WHEN x.user_id IS NOT DISTINCT FROM y.user_id THEN x.user_id END AS user_id,
       CASE WHEN x.model_version IS NOT DISTINCT FROM y.model_version THEN x.model_version
            ELSE concat_ws(' vs ', x.model_version, y.model_version) END AS model_version,
       x.prompt, x.completion AS chosen, y.completion AS rejected,
       x.ts_observed AND y.ts_observed AS ts_observed,
       CASE WHEN x.score IS NULL THEN 'ranks' ELSE 'ratings' END AS derived_from
FROM ranks_in AS x
JOIN ranks_in AS y
  ON x.source = y.source AND x.group_id = y.group_id AND x.completion <> y.completion
 AND (x.rank < y.rank OR x.score - y.score >= greatest(x.pair_margin, y.pair_margin))
