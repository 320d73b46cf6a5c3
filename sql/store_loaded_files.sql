-- purpose: remember which files a file-reading source has landed (idempotent; run on every open)
-- grain: one row per (source, input, file path, content hash); written in the ingest's transaction,
--        so a file counts as loaded exactly when its rows are committed
-- parameters: none
CREATE TABLE IF NOT EXISTS loaded_files (
    source     VARCHAR NOT NULL,
    input      VARCHAR NOT NULL,
    file       VARCHAR NOT NULL,   -- path or URL as the connector listed it
    file_hash  VARCHAR NOT NULL,   -- sha256 of the file's bytes
    batch_id   BIGINT NOT NULL,
    loaded_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (source, input, file, file_hash)
);
