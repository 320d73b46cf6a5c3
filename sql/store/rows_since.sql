-- purpose: how much feedback arrived after a snapshot: rows stored by later ingest batches (a row that
--          replaced an earlier version of its event counts as arrived), over unpaired rows, pairs and ranks
-- grain: one row (n_rows)
-- parameters: $high (BIGINT, the snapshot's high-water batch)
SELECT (SELECT count(*) FROM unpaired WHERE batch_id > $high)
     + (SELECT count(*) FROM pairs WHERE batch_id > $high)
     + (SELECT count(*) FROM ranks WHERE batch_id > $high) AS n_rows
