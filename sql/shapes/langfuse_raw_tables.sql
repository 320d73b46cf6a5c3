-- purpose: landing tables of the `langfuse` log shape: traces, observations (what is rated) and scores
-- grain: raw_langfuse_traces: one row per (source, trace id); raw_langfuse_observations: one row per
--        (source, observation id); raw_langfuse_scores: one row per (source, score id)
-- parameters: none
-- Keys are kept unique by the loader (pipeline/ingest/landing.py), not by indexes.
CREATE TABLE IF NOT EXISTS raw_langfuse_traces (
    source         VARCHAR NOT NULL,
    id             VARCHAR NOT NULL,
    trace_id       VARCHAR,
    ts             TIMESTAMP NOT NULL,
    ts_observed    BOOLEAN NOT NULL,  -- false: the export has no timestamp column; ts is the load time
    user_id        VARCHAR,
    model_version  VARCHAR,           -- the trace's version
    prompt         VARCHAR,           -- JSON list of {role, content} parsed from input
    completion     VARCHAR,           -- answer text parsed from output
    input_raw      VARCHAR,
    output_raw     VARCHAR,
    target_problem VARCHAR,           -- why a score on this trace cannot be used (NULL = usable)
    batch_id       BIGINT NOT NULL,
    row_hash       UBIGINT            -- hash of the content columns: tells a re-read from a changed row
);

CREATE TABLE IF NOT EXISTS raw_langfuse_observations (
    source         VARCHAR NOT NULL,
    id             VARCHAR NOT NULL,
    trace_id       VARCHAR,
    ts             TIMESTAMP NOT NULL,
    ts_observed    BOOLEAN NOT NULL,
    user_id        VARCHAR,
    model_version  VARCHAR,           -- provided_model_name
    prompt         VARCHAR,
    completion     VARCHAR,
    input_raw      VARCHAR,
    output_raw     VARCHAR,
    target_problem VARCHAR,
    batch_id       BIGINT NOT NULL,
    row_hash       UBIGINT            -- hash of the content columns: tells a re-read from a changed row
);

CREATE TABLE IF NOT EXISTS raw_langfuse_scores (
    source         VARCHAR NOT NULL,
    id             VARCHAR NOT NULL,
    ts             TIMESTAMP NOT NULL,
    ts_observed    BOOLEAN NOT NULL,
    trace_id       VARCHAR,
    observation_id VARCHAR,           -- NULL: the score rates the whole trace
    name           VARCHAR,
    value_raw      VARCHAR,           -- string_value, else value, as exported
    data_type      VARCHAR,           -- NUMERIC | BOOLEAN | CATEGORICAL
    author_user_id VARCHAR,
    label          BOOLEAN,           -- the thumb the score gives (NULL when prep_problem says why not)
    prep_problem   VARCHAR,
    batch_id       BIGINT NOT NULL,
    row_hash       UBIGINT            -- hash of the content columns: tells a re-read from a changed row
);
