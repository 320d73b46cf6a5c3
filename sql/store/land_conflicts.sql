-- purpose: record every version of a key that did not win: a differing duplicate inside one read,
--          an older or same-time differing version of a stored row, and a stored row a newer
--          version replaced (so no version of a key disappears without a trace)
-- grain: one row per losing version
-- parameters: $source, $input (VARCHAR), $batch_id (BIGINT), $now (TIMESTAMP);
--             __PAYLOAD__ (struct of the staged row), __STORED_PAYLOAD__ (struct of the landing-table row),
--             __RAW_TABLE__, __KEY__: filled in from the shape definition
INSERT INTO conflicts BY NAME
SELECT $source AS source, $input AS input, d._key AS key,
       CASE d._decision WHEN 'batch_conflict' THEN 'lost to a newer version in the same read'
                      ELSE 'kept the stored version (this one is not newer)' END AS outcome,
       to_json(__PAYLOAD__) AS payload, $batch_id AS batch_id, $now AS seen_at
FROM __DECIDED__ AS d JOIN (SELECT rowid AS _row, * FROM __STAGE__) USING (_row)
WHERE d._decision IN ('batch_conflict', 'stale')
UNION ALL
SELECT $source, $input, r.__KEY__, 'replaced by a newer version', to_json(__STORED_PAYLOAD__), $batch_id, $now
FROM __RAW_TABLE__ AS r
WHERE r.source = $source
  AND r.__KEY__ IN (SELECT _key FROM __DECIDED__ WHERE _decision = 'replace')
