-- purpose: landing table of the `preference` log shape (source rows after mapping and per-row checks)
-- grain: one row per (source, id); id is the source's id, or a content hash when it has none
-- parameters: none
-- Keys are kept unique by the loader (pipeline/ingest/landing.py), not by indexes.
CREATE TABLE IF NOT EXISTS raw_preference (
    source        VARCHAR NOT NULL,
    id            VARCHAR NOT NULL,
    ts            TIMESTAMP NOT NULL,
    ts_observed   BOOLEAN NOT NULL,  -- false: the source has no time column; ts is the load time
    user_id       VARCHAR,
    annotator     VARCHAR,
    model_version VARCHAR,
    prompt        VARCHAR,           -- JSON list of {role, content}
    chosen        VARCHAR,
    rejected      VARCHAR,
    prep_problem  VARCHAR,           -- why the row cannot be used (NULL = usable)
    batch_id      BIGINT NOT NULL,
    row_hash      UBIGINT            -- hash of the content columns: tells a re-read from a changed row
);
