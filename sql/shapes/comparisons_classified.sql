-- purpose: judge every not-yet-canonical `comparisons` vote of one source: usable or broken
-- grain: one row per (source, id) in raw_comparisons that is in none of pairs, ties and quarantine yet
-- parameters: $source (VARCHAR)
-- problem: NULL = usable; anything else = quarantined with that reason (set when the row landed).
SELECT r.*, md5(r.source || ':' || r.id) AS canonical_id,
       messages_turns(r.prompt) AS prompt_turns,
       r.prep_problem AS problem
FROM raw_comparisons AS r
WHERE r.source = $source
  AND md5(r.source || ':' || r.id) NOT IN (
      SELECT event_id FROM pairs WHERE source = $source
      UNION ALL SELECT event_id FROM ties WHERE source = $source
      UNION ALL SELECT event_id FROM quarantine WHERE source = $source)
