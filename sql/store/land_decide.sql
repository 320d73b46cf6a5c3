-- purpose: decide what each good staged row of one input does to its landing table: a new key, a
--          re-read of what is stored, a newer version of a stored key (replaces it), an older or
--          same-time differing version (kept out, recorded), or a duplicate inside this read
-- grain: one row per row of land_stage with no problem
-- parameters: $source (VARCHAR); __RAW_TABLE__, __KEY__ and __TS__ are the input's landing table, key
--             and timestamp column, filled in from the shape definition (never from config)
CREATE OR REPLACE TEMP TABLE land_decided AS
WITH good AS (
    SELECT * FROM land_stage WHERE _problem IS NULL
),
repeated AS (
    -- Most reads carry each key once: rank only the keys that repeat.
    SELECT _key FROM good GROUP BY _key HAVING count(*) > 1
),
dup_ranked AS (
    SELECT _row,
           row_number() OVER (PARTITION BY _key ORDER BY _ts DESC, _hash) AS _rank,
           first_value(_hash) OVER (PARTITION BY _key ORDER BY _ts DESC, _hash) AS _winner_hash,
           row_number() OVER (PARTITION BY _key, _hash ORDER BY _row) AS _copy
    FROM good
    WHERE _key IN (SELECT _key FROM repeated)
),
ranked AS (
    SELECT good.*, coalesce(d._rank, 1) AS _rank, coalesce(d._winner_hash, good._hash) AS _winner_hash,
           coalesce(d._copy, 1) AS _copy
    FROM good LEFT JOIN dup_ranked AS d ON d._row = good._row
),
stored AS (
    SELECT __KEY__ AS _key, row_hash AS _stored_hash, __TS__ AS _stored_ts
    FROM __RAW_TABLE__
    WHERE source = $source
)
SELECT ranked.*, stored._stored_hash, stored._stored_ts,
       CASE WHEN _rank > 1 AND (ranked._hash = _winner_hash OR _copy > 1) THEN 'batch_duplicate'
            WHEN _rank > 1 THEN 'batch_conflict'
            WHEN stored._key IS NULL THEN 'new'
            WHEN stored._stored_hash = ranked._hash THEN 'same'
            WHEN ranked._ts > stored._stored_ts THEN 'replace'
            ELSE 'stale'
       END AS _decision
FROM ranked LEFT JOIN stored ON stored._key = ranked._key
