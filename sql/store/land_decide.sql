-- purpose: decide what the good staged rows of one input that need deciding do to its landing table:
--          rows whose key repeats inside this read, and rows whose key is already stored. Each is a
--          re-read of what is stored ('same'), a newer version of a stored key ('replace'), an older
--          or same-time differing version ('stale', kept out and recorded), a duplicate inside this
--          read ('batch_duplicate'), a differing version that lost inside this read
--          ('batch_conflict'), or the winner of its repeated key with no stored version ('new').
--          Every other good row is new, and is landed without passing through this table.
-- grain: one row per staged row (_row: its rowid in the staged table, i.e. its place in the read) with a
--        repeated or stored key
-- parameters: $source (VARCHAR); __RAW_TABLE__, __KEY__ and __TS__ are the input's landing table, key
--             and timestamp column, filled in from the shape definition (never from config)
CREATE OR REPLACE TEMP TABLE __DECIDED__ AS
WITH good AS (
    SELECT rowid AS _row, _key, _ts, _hash FROM __STAGE__ WHERE _problem IS NULL
),
stored AS (
    SELECT __KEY__ AS _key, row_hash AS _stored_hash, __TS__ AS _stored_ts
    FROM __RAW_TABLE__
    WHERE source = $source AND __KEY__ IN (SELECT _key FROM good)
),
repeated AS (
    -- Most reads carry each key once: rank only the keys that repeat.
    SELECT _key FROM good GROUP BY _key HAVING count(*) > 1
),
needs AS (
    SELECT * FROM good WHERE _key IN (SELECT _key FROM repeated) OR _key IN (SELECT _key FROM stored)
),
ranked AS (
    SELECT *,
           row_number() OVER (PARTITION BY _key ORDER BY _ts DESC, _hash) AS _rank,
           first_value(_hash) OVER (PARTITION BY _key ORDER BY _ts DESC, _hash) AS _winner_hash,
           row_number() OVER (PARTITION BY _key, _hash ORDER BY _row) AS _copy
    FROM needs
)
SELECT ranked._row, ranked._key, ranked._ts, stored._stored_hash, stored._stored_ts,
       CASE WHEN _rank > 1 AND (ranked._hash = _winner_hash OR _copy > 1) THEN 'batch_duplicate'
            WHEN _rank > 1 THEN 'batch_conflict'
            WHEN stored._key IS NULL THEN 'new'
            WHEN stored._stored_hash = ranked._hash THEN 'same'
            WHEN ranked._ts > stored._stored_ts THEN 'replace'
            ELSE 'stale'
       END AS _decision
FROM ranked LEFT JOIN stored ON stored._key = ranked._key
