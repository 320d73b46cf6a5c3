-- purpose: send the staged rows of one input that failed a landing check to quarantine, with the
--          reason, the row as read (scrubbed and hashed) and the run's batch id
-- grain: one row per distinct bad row not quarantined before (same id: same source, input and key,
--        or the same content when the key is missing)
-- parameters: $source, $input (VARCHAR), $batch_id (BIGINT), $now (TIMESTAMP);
--             __PAYLOAD__ is the struct of the input's columns, filled in from the shape definition
INSERT INTO quarantine BY NAME
SELECT q_id AS event_id, $source AS source, _problem AS reason, payload, $batch_id AS batch_id,
       $now AS quarantined_at, $input AS input, _key AS key,
       CASE WHEN isfinite(_ts) THEN _ts END AS ts
FROM (
    SELECT md5($source || ':' || $input || ':' || coalesce(_key, '#' || _hash::VARCHAR)) AS q_id,
           _problem, _key, _ts, to_json(__PAYLOAD__) AS payload
    FROM __STAGE__
    WHERE _problem IS NOT NULL
)
WHERE q_id NOT IN (SELECT event_id FROM quarantine WHERE source = $source)
QUALIFY row_number() OVER (PARTITION BY q_id ORDER BY _problem) = 1
