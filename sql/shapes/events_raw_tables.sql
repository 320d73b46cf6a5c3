-- purpose: landing tables of the `events` log shape (source rows after column mapping, checks,
--          PII scrubbing and user-id hashing)
-- grain: raw_events_generations: one row per (source, request_id);
--        raw_events_feedback: one row per (source, event_id) (kept unique by the loader)
-- parameters: none
CREATE TABLE IF NOT EXISTS raw_events_generations (
    source        VARCHAR NOT NULL,
    request_id    VARCHAR NOT NULL,
    ts            TIMESTAMP NOT NULL,
    user_id       VARCHAR,
    model_version VARCHAR,
    messages      VARCHAR,   -- JSON list of {role, content}, ending with the user's turn
    response      VARCHAR,
    batch_id      BIGINT NOT NULL,
    row_hash      UBIGINT    -- hash of the content columns: tells a re-read from a changed row
);

CREATE TABLE IF NOT EXISTS raw_events_feedback (
    source           VARCHAR NOT NULL,
    event_id         VARCHAR NOT NULL,
    request_id       VARCHAR,
    ts               TIMESTAMP NOT NULL,
    user_id          VARCHAR,
    kind             VARCHAR,  -- 'thumb' | 'comparison'
    value            VARCHAR,  -- thumb: 'up' | 'down'; comparison: 'a' (request_id won) | 'b' (other won)
    other_request_id VARCHAR,  -- comparison: the other answer to the same messages
    batch_id         BIGINT NOT NULL,
    row_hash         UBIGINT
);
