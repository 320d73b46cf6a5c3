-- purpose: landing table of the `ratings` log shape (source rows after mapping and per-row checks)
-- grain: one row per (source, id); id is the source's id, or a content hash when it has none
-- parameters: none
-- Keys are kept unique by the loader (pipeline/ingest/landing.py), not by indexes.
CREATE TABLE IF NOT EXISTS raw_ratings (
    source        VARCHAR NOT NULL,
    id            VARCHAR NOT NULL,
    ts            TIMESTAMP NOT NULL,
    ts_observed   BOOLEAN NOT NULL,  -- false: the source has no time column; ts is the load time
    user_id       VARCHAR,
    model_version VARCHAR,
    prompt        VARCHAR,           -- JSON list of {role, content}
    completion    VARCHAR,
    score         DOUBLE,            -- NULL when score_raw is not a usable number
    score_raw     VARCHAR,           -- the score as the source wrote it
    prep_problem  VARCHAR,           -- why the row cannot be used (NULL = usable)
    batch_id      BIGINT NOT NULL,
    row_hash      UBIGINT            -- hash of the content columns: tells a re-read from a changed row
);
