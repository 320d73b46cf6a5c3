-- purpose: canonical rows of this batch that repeat an earlier row: the same user, prompt, answer(s)
--          and label after case and whitespace normalisation (a double click, a re-sent log line)
-- grain: one row per duplicate canonical row of batch $batch_id, with the row it repeats
-- parameters: $batch_id (BIGINT); __TABLE__ is unpaired or pairs (filled in by the loader)
-- Different users agreeing are not duplicates: their votes are the evidence for label noise.
SELECT event_id, first_id
FROM (
    SELECT event_id, batch_id,
           first_value(event_id) OVER (PARTITION BY dup_key ORDER BY batch_id, ts, event_id) AS first_id
    FROM __TABLE__
    WHERE dup_key IN (SELECT dup_key FROM __TABLE__ WHERE batch_id = $batch_id)
)
WHERE batch_id = $batch_id AND event_id <> first_id
