-- purpose: landing table of the `message_trees` log shape: one row per message of a flat or nested export
-- grain: one row per (source, message_id)
-- parameters: none
-- Keys are kept unique by the loader (pipeline/ingest/landing.py), not by indexes.
CREATE TABLE IF NOT EXISTS raw_message_trees (
    source        VARCHAR NOT NULL,
    message_id    VARCHAR NOT NULL,
    parent_id     VARCHAR,           -- NULL for a tree's root (the first prompt)
    tree_id       VARCHAR,
    role          VARCHAR,           -- 'user' (prompter) | 'assistant'
    text          VARCHAR,
    rank          BIGINT,            -- among siblings; 0 is best; NULL = not ranked
    votes_up      BIGINT NOT NULL,   -- count of "+1" emoji
    votes_down    BIGINT NOT NULL,   -- count of "-1" emoji
    emojis        VARCHAR,           -- the emoji map as the export wrote it
    ts            TIMESTAMP NOT NULL,
    ts_observed   BOOLEAN NOT NULL,  -- false: the export has no created_date; ts is the load time
    user_id       VARCHAR,
    model_name    VARCHAR,
    prep_problem  VARCHAR,           -- why the message itself cannot be used (NULL = usable)
    batch_id      BIGINT NOT NULL,
    row_hash      UBIGINT            -- hash of the content columns: tells a re-read from a changed row
);
