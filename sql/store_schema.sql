-- purpose: create the feedback store's tables (idempotent; run on every open)
-- grain: unpaired/pairs/ranks: one row per canonical feedback event (event_id); quarantine: one row per
--        rejected source row or canonical row; cursors: one row per (source, input); pending: one
--        row per feedback row waiting for its generation; conflicts: one row per differing duplicate
--        of a key; ingest_log: one row per ingest batch; snapshots: one row per frozen view;
--        store_meta: one row per installation setting (the user-id salt, the layout version);
--        superseded_unpaired/_pairs/_ranks/_ties: one row per stored row a newer version replaced (what
--        earlier snapshots still read); ties: one row per vote that preferred neither answer
-- parameters: none
-- Uniqueness of event_id is kept by the loader (anti-joins), not by indexes: a keyed insert cost
-- more than all the other work of a load together.
CREATE SEQUENCE IF NOT EXISTS batch_ids START 1;

CREATE TABLE IF NOT EXISTS unpaired (
    event_id      VARCHAR NOT NULL,      -- md5(source || ':' || source event id): stable across re-runs
    source        VARCHAR NOT NULL,
    ts            TIMESTAMP NOT NULL,    -- UTC
    user_id       VARCHAR,               -- sha256(installation salt || the source's user id)
    model_version VARCHAR,
    prompt        STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
    completion    VARCHAR NOT NULL,
    label         BOOLEAN NOT NULL,      -- true = thumbs up
    batch_id      BIGINT NOT NULL,
    ingested_at   TIMESTAMP NOT NULL,
    -- normalised user + prompt + answer + label: the same vote twice (stores written before this had an
    -- item_key column too; it is no longer filled: contradictions are counted from the texts)
    dup_key       VARCHAR,
    ts_observed   BOOLEAN NOT NULL       -- false: the source had no time for it; ts is when it was loaded
);

CREATE TABLE IF NOT EXISTS pairs (
    event_id      VARCHAR NOT NULL,
    source        VARCHAR NOT NULL,
    ts            TIMESTAMP NOT NULL,
    user_id       VARCHAR,
    model_version VARCHAR,
    prompt        STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
    chosen        VARCHAR NOT NULL,
    rejected      VARCHAR NOT NULL,
    batch_id      BIGINT NOT NULL,
    ingested_at   TIMESTAMP NOT NULL,
    dup_key       VARCHAR,               -- normalised user + prompt + chosen + rejected
    ts_observed   BOOLEAN NOT NULL       -- false: ts is a load time (for a pair of two rows: either's)
);

-- Rankings and ratings as observed: pairs (every better- vs worse-ranked answer of a group; every
-- answer rated at least a margin above another) are derived from them when a snapshot is read
-- (pipeline/conversions.py), never stored as if observed.
CREATE TABLE IF NOT EXISTS ranks (
    event_id      VARCHAR NOT NULL,      -- md5(source || ':rank:' || answer_id); rated: ':score:'
    source        VARCHAR NOT NULL,
    ts            TIMESTAMP NOT NULL,
    user_id       VARCHAR,
    model_version VARCHAR,
    prompt        STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
    completion    VARCHAR NOT NULL,
    rank          BIGINT,                -- 0 is best; only ranks within one (source, group_id) compare
    score         DOUBLE,                -- a rated answer's score (rank NULL): higher is better
    pair_margin   DOUBLE,                -- rated answers give a pair when their scores differ this much
    group_id      VARCHAR NOT NULL,      -- the answers compared (one prompter message, one rated prompt)
    answer_id     VARCHAR NOT NULL,      -- the answer's id in the source
    batch_id      BIGINT NOT NULL,
    ingested_at   TIMESTAMP NOT NULL,
    ts_observed   BOOLEAN NOT NULL
);

-- Votes that prefer neither answer (a tie, or both answers bad), as observed: counted in the data profile,
-- never read as pairs.
CREATE TABLE IF NOT EXISTS ties (
    event_id      VARCHAR NOT NULL,      -- md5(source || ':' || source vote id)
    source        VARCHAR NOT NULL,
    ts            TIMESTAMP NOT NULL,
    user_id       VARCHAR,
    model_version VARCHAR,
    prompt        STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
    answer_a      VARCHAR NOT NULL,
    answer_b      VARCHAR NOT NULL,
    verdict       VARCHAR NOT NULL,      -- tie | both_bad
    batch_id      BIGINT NOT NULL,
    ingested_at   TIMESTAMP NOT NULL,
    ts_observed   BOOLEAN NOT NULL
);

-- Canonical rows replaced by a newer version (a row fixed upstream, a re-judged tree): kept, with the
-- batch that replaced them, so a snapshot taken before reads them still. Only snapshots read these;
-- every other reader of the store sees the current rows of unpaired and pairs alone.
CREATE TABLE IF NOT EXISTS superseded_unpaired AS
    SELECT *, NULL::BIGINT AS superseded_batch FROM unpaired LIMIT 0;
CREATE TABLE IF NOT EXISTS superseded_pairs AS
    SELECT *, NULL::BIGINT AS superseded_batch FROM pairs LIMIT 0;
CREATE TABLE IF NOT EXISTS superseded_ranks AS
    SELECT *, NULL::BIGINT AS superseded_batch FROM ranks LIMIT 0;
CREATE TABLE IF NOT EXISTS superseded_ties AS
    SELECT *, NULL::BIGINT AS superseded_batch FROM ties LIMIT 0;

CREATE TABLE IF NOT EXISTS quarantine (
    event_id       VARCHAR NOT NULL,     -- canonical id, or md5(source:input:key) for a rejected source row
    source         VARCHAR NOT NULL,
    reason         VARCHAR NOT NULL,
    payload        JSON,                 -- the row as read (after PII scrubbing and user-id hashing)
    batch_id       BIGINT NOT NULL,      -- the run that quarantined it
    quarantined_at TIMESTAMP NOT NULL,
    input          VARCHAR,              -- the shape input it was read from (NULL: a canonical row)
    key            VARCHAR,              -- its key in that input
    ts             TIMESTAMP             -- its timestamp (UTC), when it had a usable one
);

CREATE TABLE IF NOT EXISTS cursors (
    source     VARCHAR NOT NULL,
    input      VARCHAR NOT NULL,
    position   VARCHAR NOT NULL,     -- the largest cursor value read so far (capped at now + skew)
    kind       VARCHAR NOT NULL,     -- timestamp | timestamptz | text | integer
    batch_id   BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (source, input)
);

CREATE TABLE IF NOT EXISTS pending (
    source   VARCHAR NOT NULL,
    input    VARCHAR NOT NULL,
    key      VARCHAR NOT NULL,
    since    TIMESTAMP NOT NULL,     -- when it was first judged pending
    reason   VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS conflicts (
    source    VARCHAR NOT NULL,
    input     VARCHAR NOT NULL,
    key       VARCHAR NOT NULL,
    outcome   VARCHAR NOT NULL,      -- 'kept stored' (older or same-time version ignored) | 'replaced' (newer won)
    payload   JSON,                  -- the version that lost
    batch_id  BIGINT NOT NULL,
    seen_at   TIMESTAMP NOT NULL
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
    pending         BIGINT NOT NULL,
    ranks_added     BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS snapshots (
    snapshot_id      VARCHAR PRIMARY KEY,  -- content hash of the event ids it holds
    created_at       TIMESTAMP NOT NULL,
    high_water_batch BIGINT NOT NULL,      -- rows with batch_id <= this belong to the snapshot
    n_unpaired       BIGINT NOT NULL,
    n_pairs          BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS store_meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
