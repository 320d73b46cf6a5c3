-- purpose: create the feedback store's tables (idempotent; run on every open)
-- grain: unpaired/pairs: one row per canonical feedback event (event_id); raw_*: one row per source
--        row; cursors: one row per (source, input); ingest_log: one row per ingest batch;
--        snapshots: one row per frozen view of the canonical rows
-- parameters: none
CREATE SEQUENCE IF NOT EXISTS batch_ids START 1;

CREATE TABLE IF NOT EXISTS unpaired (
    event_id      VARCHAR PRIMARY KEY,   -- md5(source || ':' || source event id): stable across re-runs
    source        VARCHAR NOT NULL,
    ts            TIMESTAMP NOT NULL,
    user_id       VARCHAR,               -- sha256 of the source's user id
    model_version VARCHAR,
    prompt        STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
    completion    VARCHAR NOT NULL,
    label         BOOLEAN NOT NULL,      -- true = thumbs up
    batch_id      BIGINT NOT NULL,
    ingested_at   TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS pairs (
    event_id      VARCHAR PRIMARY KEY,
    source        VARCHAR NOT NULL,
    ts            TIMESTAMP NOT NULL,
    user_id       VARCHAR,
    model_version VARCHAR,
    prompt        STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
    chosen        VARCHAR NOT NULL,
    rejected      VARCHAR NOT NULL,
    batch_id      BIGINT NOT NULL,
    ingested_at   TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS quarantine (
    event_id       VARCHAR PRIMARY KEY,
    source         VARCHAR NOT NULL,
    reason         VARCHAR NOT NULL,
    payload        JSON,
    batch_id       BIGINT NOT NULL,
    quarantined_at TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS cursors (
    source     VARCHAR NOT NULL,
    input      VARCHAR NOT NULL,
    position   TIMESTAMP NOT NULL,     -- the largest cursor value read so far
    batch_id   BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (source, input)
);

CREATE TABLE IF NOT EXISTS ingest_log (
    batch_id        BIGINT PRIMARY KEY,
    source          VARCHAR NOT NULL,
    started_at      TIMESTAMP NOT NULL,
    finished_at     TIMESTAMP NOT NULL,
    rows_read       BIGINT NOT NULL,
    raw_added       BIGINT NOT NULL,
    unpaired_added  BIGINT NOT NULL,
    pairs_added     BIGINT NOT NULL,
    quarantined     BIGINT NOT NULL,
    pending         BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS snapshots (
    snapshot_id      VARCHAR PRIMARY KEY,  -- content hash of the event ids it holds
    created_at       TIMESTAMP NOT NULL,
    high_water_batch BIGINT NOT NULL,      -- rows with batch_id <= this belong to the snapshot
    n_unpaired       BIGINT NOT NULL,
    n_pairs          BIGINT NOT NULL
);
