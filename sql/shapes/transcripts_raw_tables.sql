-- purpose: landing table of the `transcripts` log shape: both dialogues as given, and their split
-- grain: one row per (source, id); id is the source's id, or a hash of both dialogues when it has none
-- parameters: none
-- Keys are kept unique by the loader (pipeline/ingest/landing.py), not by indexes.
CREATE TABLE IF NOT EXISTS raw_transcripts (
    source        VARCHAR NOT NULL,
    id            VARCHAR NOT NULL,
    ts            TIMESTAMP NOT NULL,
    ts_observed   BOOLEAN NOT NULL,  -- false: the source has no time column; ts is the load time
    user_id       VARCHAR,
    model_version VARCHAR,
    prompt        VARCHAR,           -- JSON list of {role, content}: the shared history
    chosen        VARCHAR,           -- the chosen side's final assistant answer
    rejected      VARCHAR,           -- the rejected side's final assistant answer
    chosen_raw    VARCHAR,           -- the whole chosen dialogue as written; kept only when prep_problem is set
    rejected_raw  VARCHAR,
    prep_problem  VARCHAR,           -- why the row cannot be used (NULL = usable)
    batch_id      BIGINT NOT NULL,
    row_hash      UBIGINT            -- hash of the content columns: tells a re-read from a changed row
);
