-- purpose: landing table of the `comparisons` log shape (one row per vote, after mapping and per-row checks)
-- grain: one row per (source, id); id is the source's id, or a content hash when it has none; a row of the
--        answers layout lands one row per vote, its id the row's plus '/<vote number>:<i>v<j>'
-- parameters: none
-- Keys are kept unique by the loader (pipeline/ingest/landing.py), not by indexes.
CREATE TABLE IF NOT EXISTS raw_comparisons (
    source        VARCHAR NOT NULL,
    id            VARCHAR NOT NULL,
    ts            TIMESTAMP NOT NULL,
    ts_observed   BOOLEAN NOT NULL,  -- false: the source has no time column; ts is the load time
    user_id       VARCHAR,
    annotator     VARCHAR,
    model_a       VARCHAR,           -- the model behind answer_a (model_a, else model_version)
    model_b       VARCHAR,
    prompt        VARCHAR,           -- JSON list of {role, content}
    answer_a      VARCHAR,
    answer_b      VARCHAR,
    winner        VARCHAR,           -- a | b | tie | both_bad; NULL when winner_raw could not be read
    winner_raw    VARCHAR,           -- the winner as the source wrote it
    prep_problem  VARCHAR,           -- why the row cannot be used (NULL = usable)
    batch_id      BIGINT NOT NULL,
    row_hash      UBIGINT            -- hash of the content columns: tells a re-read from a changed row
);
